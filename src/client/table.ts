/** Aligned plain-text tables for the client commands: columns padded to their widest cell. */

const GAP = '  ';

/** One line per row (header first when given), no trailing spaces, ending with a newline. */
export function formatTable(rows: readonly (readonly string[])[], header?: readonly string[]): string {
  const all = header === undefined ? rows : [header, ...rows];
  const widths: number[] = [];
  for (const row of all) {
    row.forEach((cell, column) => {
      widths[column] = Math.max(widths[column] ?? 0, cell.length);
    });
  }
  return all
    .map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(GAP).trimEnd())
    .map((line) => `${line}\n`)
    .join('');
}

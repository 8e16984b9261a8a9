/**
 * Installs the real components the suite needs (HAProxy, wrk, Pebble for ACME) with apt when running as root
 * and they are missing, so `npm test` works on a fresh machine.
 */
import { execFileSync } from 'node:child_process';

function has(binary: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Tests that run the real CLI (kill -9, start-up errors) use the compiled dist/. */
function build(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}

export default function setup(): void {
  build();
  const missing = [
    ['haproxy', 'haproxy'],
    ['wrk', 'wrk'],
    ['pebble', 'pebble'],
  ].filter(([binary]) => !has(binary as string)).map(([, pkg]) => pkg as string);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`tests need ${missing.join(', ')}; install them: sudo apt-get install -y ${missing.join(' ')}`);
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

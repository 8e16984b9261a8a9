/**
 * Reads a /metrics page with a Prometheus text-format parser (parse-prometheus-text-format), so
 * tests check families, labels and values as Prometheus would see them.
 */
import { createRequire } from 'node:module';

export interface Sample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value?: string;
  readonly count?: string;
  readonly sum?: string;
  readonly buckets?: Readonly<Record<string, string>>;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly metrics: readonly Sample[];
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

export class Scrape {
  private readonly families: Map<string, Family>;

  constructor(text: string) {
    this.families = new Map(parse(text).map((family) => [family.name, family]));
    // The parser drops the labels of histogram samples: read NAME_count and NAME_sum of
    // histograms as plain series too, from the same text declared untyped.
    const untyped = parse(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped'));
    // Each label set's _bucket, _sum and _count lines come together, so one name appears as
    // several consecutive untyped families: they are merged.
    const merged = new Map<string, Family>();
    for (const family of untyped) {
      if (this.families.has(family.name)) continue;
      const known = merged.get(family.name);
      merged.set(family.name, known === undefined ? family : { ...known, metrics: [...known.metrics, ...family.metrics] });
    }
    for (const [name, family] of merged) this.families.set(name, family);
  }

  family(name: string): Family | undefined {
    return this.families.get(name);
  }

  /** The sample of `name` whose labels include `labels`; undefined when there is none. */
  sample(name: string, labels: Readonly<Record<string, string>> = {}): Sample | undefined {
    return this.families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  }

  /** The value of a counter or gauge sample, 0 when absent; for a histogram, read NAME_count. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number {
    return Number(this.sample(name, labels)?.value ?? 0);
  }
}

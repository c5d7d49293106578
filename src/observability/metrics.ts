import client from 'prom-client';

/** A label set: every label the metric was registered with, by name. */
export type Labels = Record<string, string>;

/** A monotonically increasing count, optionally split by labels. */
export interface Counter {
  inc(labels?: Labels, by?: number): void;
  /**
   * An incrementer for fixed labels, for hot paths: it adds to a plain number, folded into the counter when it
   * is read (prom-client hashes the labels on every increment, a child's too). Binding the same labels again
   * returns the same incrementer.
   */
  bind(labels: Labels): (by?: number) => void;
}

/** A distribution of durations, in seconds. */
export interface Histogram {
  observe(labels: Labels, seconds: number): void;
  /** An observer for fixed labels, for hot paths. */
  bind(labels: Labels): (seconds: number) => void;
}

/** What a gauge reads at scrape time: one value, or one value per label set. */
export type GaugeReading = number | readonly (readonly [Labels, number])[];

/**
 * A set of named metrics rendered in the Prometheus text format (prom-client underneath). Gauges are read at
 * scrape time. Registering a name twice returns the first metric.
 */
export interface Metrics {
  /**
   * Registers (or returns) a counter with these label names. `zeros` are label sets shown at 0 before their
   * first event, so a query or an alert on them has a series from the start (an unlabelled counter: shown
   * at 0 anyway).
   */
  counter(name: string, help: string, labelNames?: readonly string[], zeros?: readonly Labels[]): Counter;
  /** Registers a gauge whose series are exactly what `read` returns at each scrape. */
  gauge(name: string, help: string, labelNames: readonly string[], read: () => GaugeReading): void;
  /** Registers (or returns) a histogram of seconds with these bucket bounds. */
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram;
  /** The current value of a counter or gauge series, or a histogram's count (0 when it has none), for tests. */
  value(name: string, labels?: Labels): Promise<number>;
  /** The text exposition of this registry and, when asked at creation, the process's own metrics. */
  render(): Promise<string>;
  /** The Content-Type header for {@link render}'s text. */
  readonly contentType: string;
}

/** Bucket bounds (seconds) for latencies from a millisecond to ten seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

// prom-client prints labels in the order of the object's keys; sorted, a series reads the same whoever made it.
function sorted(labels: Labels): Labels {
  const keys = Object.keys(labels);
  if (keys.length < 2) return labels;
  const out: Labels = {};
  for (const k of keys.sort()) out[k] = labels[k]!;
  return out;
}

// Process, GC and event-loop metrics belong to the process, not to one server: one registry for all, made
// once, because each collection installs its own GC observer and event-loop monitor for good.
let processRegistry: client.Registry | undefined;
function processMetrics(): client.Registry {
  if (!processRegistry) {
    processRegistry = new client.Registry();
    client.collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Creates an empty registry; `process: true` adds Node's process, GC and event-loop metrics to its output. */
export function createMetrics(o: { process?: boolean } = {}): Metrics {
  const registry = new client.Registry();
  const counters = new Map<string, Counter>();
  const histograms = new Map<string, Histogram>();
  const labelled = (names: readonly string[]) => ({ labelNames: [...names], registers: [registry] });
  return {
    contentType: registry.contentType,
    counter(name, help, labelNames = [], zeros = []) {
      let c = counters.get(name);
      if (!c) {
        const bound = new Map<string, { readonly labels: Labels; n: number; readonly inc: (by?: number) => void }>();
        const metric = new client.Counter({
          name, help, ...labelled(labelNames),
          collect() {
            for (const b of bound.values()) {
              if (b.n === 0) continue;
              this.inc(b.labels, b.n);
              b.n = 0;
            }
          },
        });
        c = {
          inc: (labels = {}, by = 1) => metric.inc(sorted(labels), by),
          bind: (labels) => {
            const fixed = sorted(labels);
            const key = JSON.stringify(fixed);
            let b = bound.get(key);
            if (!b) {
              const entry = { labels: fixed, n: 0, inc: (by = 1) => void (entry.n += by) };
              bound.set(key, (b = entry));
            }
            return b.inc;
          },
        };
        counters.set(name, c);
      }
      const metric = registry.getSingleMetric(name) as client.Counter;
      for (const labels of zeros) metric.inc(sorted(labels), 0);
      return c;
    },
    gauge(name, help, labelNames, read) {
      if (registry.getSingleMetric(name)) return;
      new client.Gauge({
        name, help, ...labelled(labelNames),
        collect() {
          this.reset();
          const v = read();
          if (typeof v === 'number') this.set(v);
          else for (const [labels, n] of v) this.set(sorted(labels), n);
        },
      });
    },
    histogram(name, help, labelNames, buckets) {
      let h = histograms.get(name);
      if (!h) {
        const metric = new client.Histogram({ name, help, buckets: [...buckets], ...labelled(labelNames) });
        h = {
          observe: (labels, seconds) => metric.observe(sorted(labels), seconds),
          bind: (labels) => {
            const child = metric.labels(sorted(labels));
            return (seconds) => child.observe(seconds);
          },
        };
        histograms.set(name, h);
      }
      return h;
    },
    async value(name, labels = {}) {
      const metric = registry.getSingleMetric(name);
      if (!metric) return 0;
      const want = Object.entries(labels);
      const { values } = await metric.get();
      const match = values.find((v) => {
        const metricName = (v as { metricName?: string }).metricName;
        if (metricName !== undefined && metricName !== name && metricName !== `${name}_count`) return false;
        const have = v.labels as Record<string, unknown>;
        return Object.keys(have).length === want.length && want.every(([k, x]) => String(have[k]) === x);
      });
      return match?.value ?? 0;
    },
    async render() {
      const own = await registry.metrics();
      return o.process ? own + (await processMetrics().metrics()) : own;
    },
  };
}

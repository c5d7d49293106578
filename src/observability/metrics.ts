/** A monotonically increasing count, optionally split by labels. */
export interface Counter {
  inc(labels?: Record<string, string>, by?: number): void;
  get(labels?: Record<string, string>): number;
  /** An incrementer for fixed labels, for hot paths (the label text is built once). */
  bind(labels: Record<string, string>): (by?: number) => void;
}

/** A set of named metrics rendered in the Prometheus text format. Gauges are read at scrape time. */
export interface Metrics {
  /**
   * Registers (or returns) a counter. `zeros` are label sets shown at 0 before their first event, so a query
   * or an alert on them has a series from the start (an unlabelled counter: `[{}]`).
   */
  counter(name: string, help: string, zeros?: readonly Record<string, string>[]): Counter;
  gauge(name: string, help: string, read: () => number | readonly (readonly [Record<string, string>, number])[]): void;
  render(): string;
}

function labelText(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${labels[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

/** Creates an empty registry. Registering a name twice returns the first metric. */
export function createMetrics(): Metrics {
  const counters = new Map<string, { help: string; values: Map<string, number> }>();
  const gauges = new Map<string, { help: string; read: () => number | readonly (readonly [Record<string, string>, number])[] }>();
  return {
    counter(name, help, zeros = []) {
      let c = counters.get(name);
      if (!c) counters.set(name, (c = { help, values: new Map() }));
      const values = c.values;
      for (const labels of zeros) {
        const k = labelText(labels);
        if (!values.has(k)) values.set(k, 0);
      }
      return {
        inc: (labels = {}, by = 1) => {
          const k = labelText(labels);
          values.set(k, (values.get(k) ?? 0) + by);
        },
        get: (labels = {}) => values.get(labelText(labels)) ?? 0,
        bind: (labels) => {
          const k = labelText(labels);
          return (by = 1) => void values.set(k, (values.get(k) ?? 0) + by);
        },
      };
    },
    gauge(name, help, read) {
      if (!gauges.has(name)) gauges.set(name, { help, read });
    },
    render() {
      const out: string[] = [];
      for (const [name, c] of [...counters].sort()) {
        out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
        for (const [labels, v] of [...c.values].sort()) out.push(`${name}${labels} ${v}`);
      }
      for (const [name, g] of [...gauges].sort()) {
        out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`);
        const v = g.read();
        if (typeof v === 'number') out.push(`${name} ${v}`);
        else for (const [labels, n] of v) out.push(`${name}${labelText(labels)} ${n}`);
      }
      return out.join('\n') + '\n';
    },
  };
}

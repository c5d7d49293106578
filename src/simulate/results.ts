import { LatencyHistogram } from './histogram.js';

/** One simulated minute of one run. */
export interface MinuteStats {
  readonly minute: number;
  readonly requests: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly p999Ms: number | null;
  /** Requests slower than the SLO, failed ones included. */
  readonly overSlo: number;
  /** Requests that found no ready pod (Envoy answers 503). */
  readonly failed: number;
  /** spec.replicas and ready pods at the minute's end; all pods (starting, ready, draining) likewise. */
  readonly desired: number;
  readonly ready: number;
  readonly pods: number;
  readonly gpuHours: number;
  readonly scaleEvents: number;
}

/** One traffic class of a run (scenarios with `classes`). Percentages are of the class's requests. */
export interface ClassResult {
  readonly name: string;
  readonly route: string | null;
  readonly sloMs: number;
  readonly requests: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Minutes whose p99 for this class is within its SLO. */
  readonly sloMinutes: number;
  readonly minuteCount: number;
  /** Requests answered 503 on every attempt (the first and each retry after Retry-After): lost to the client. */
  readonly shedPercent: number;
  /** 503 answers given, retries included. */
  readonly shedAnswers: number;
  /** Requests (retries included) served by the fallback service's fleet. */
  readonly fallbackPercent: number;
  /** Requests cut at the route's timeout. */
  readonly timeouts: number;
}

/** A whole run. */
export interface RunResult {
  readonly name: string;
  readonly balancer: string;
  readonly scaling: string;
  readonly minutes: readonly MinuteStats[];
  readonly overall: {
    readonly requests: number;
    readonly failed: number;
    readonly p50Ms: number | null;
    readonly p99Ms: number | null;
    readonly p999Ms: number | null;
    readonly overSloFraction: number;
    /** Minutes whose p99 is within the SLO (a minute with no requests meets it). */
    readonly sloMinutes: number;
    readonly minuteCount: number;
    readonly gpuHours: number;
    readonly scaleEvents: number;
    readonly peakPods: number;
  };
  /** Per class, when the scenario declares classes. */
  readonly classes?: readonly ClassResult[];
  /** GPU-hours of the fallback service's fleet (included in overall.gpuHours), when a playbook falls back. */
  readonly fallbackGpuHours?: number;
  /**
   * Aggregate mode: the minutes in which requests queued beyond full batches somewhere in the fleet, where the
   * fluid model is outside the range it was checked in (it overstates the queue; BENCHMARKS.md).
   */
  readonly saturatedMinutes?: readonly number[];
}

const rounded = (ms: number) => (Number.isNaN(ms) ? null : Math.round(ms * 10) / 10);

/** Collects latencies minute by minute and the run's totals; both simulation modes feed one. */
export class RunRecorder {
  private readonly minute: LatencyHistogram;
  private readonly all: LatencyHistogram;
  private readonly minutes: MinuteStats[] = [];
  private failedNow = 0;
  private failedAll = 0;
  private gpuSecondsNow = 0;
  private gpuSecondsAll = 0;
  private eventsBefore = 0;
  private peakPods = 0;

  constructor(private readonly sloMs: number) {
    this.minute = new LatencyHistogram(sloMs);
    this.all = new LatencyHistogram(sloMs);
  }

  latency(ms: number, weight = 1): void {
    this.minute.add(ms, weight);
  }

  /** Requests that found no ready pod: counted as failed and over the SLO. */
  failed(weight = 1): void {
    this.failedNow += weight;
    this.minute.add(Number.MAX_VALUE, weight);
  }

  /** `pods` of `gpusPerPod` GPUs each existed (starting, ready or draining) for `seconds`. */
  gpu(pods: number, seconds: number, gpusPerPod = 1): void {
    this.gpuSecondsNow += pods * gpusPerPod * seconds;
    this.peakPods = Math.max(this.peakPods, pods);
  }

  /** Closes minute `index` with the fleet as it stands. */
  endMinute(index: number, fleet: { desired: number; ready: number; pods: number; scaleEvents: number }): void {
    const m = this.minute;
    this.minutes.push({
      minute: index, requests: Math.round(m.count()), p50Ms: rounded(m.quantile(0.5)), p99Ms: rounded(m.quantile(0.99)), p999Ms: rounded(m.quantile(0.999)),
      overSlo: Math.round(m.overSlo()), failed: Math.round(this.failedNow), desired: fleet.desired, ready: fleet.ready, pods: fleet.pods,
      gpuHours: this.gpuSecondsNow / 3600, scaleEvents: fleet.scaleEvents - this.eventsBefore,
    });
    this.all.merge(m);
    m.reset();
    this.failedAll += this.failedNow;
    this.gpuSecondsAll += this.gpuSecondsNow;
    this.failedNow = this.gpuSecondsNow = 0;
    this.eventsBefore = fleet.scaleEvents;
  }

  result(name: string, balancer: string, scaling: string): RunResult {
    const a = this.all;
    return {
      name, balancer, scaling, minutes: this.minutes,
      overall: {
        requests: Math.round(a.count()), failed: Math.round(this.failedAll), p50Ms: rounded(a.quantile(0.5)), p99Ms: rounded(a.quantile(0.99)), p999Ms: rounded(a.quantile(0.999)),
        overSloFraction: a.count() > 0 ? a.overSlo() / a.count() : 0,
        sloMinutes: this.minutes.filter((m) => m.p99Ms === null || m.p99Ms <= this.sloMs).length,
        minuteCount: this.minutes.length, gpuHours: this.gpuSecondsAll / 3600, scaleEvents: this.eventsBefore, peakPods: this.peakPods,
      },
    };
  }
}

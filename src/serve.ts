import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from './config/package-root.js';
import type * as grpc from '@grpc/grpc-js';
import type { KubeConfig } from '@kubernetes/client-node';
import { applyPlaybooks, applyWeights, type ListenerSpec, type Model } from './model/model.js';
import { envoyRoot } from './xds/protos.js';
import type { Metrics } from './observability/metrics.js';
import type { ReplicaCounts } from './scaler/decide.js';
import { filePolicySource } from './scaler/policy-source.js';
import { createStatsRelay, STATS_ADDRESS_ANNOTATION } from './scaler/relay.js';
import { createStatsScraper, type StatsScraper } from './scaler/scrape.js';
import { endpointStore } from './scaler/replica-store.js';
import { createScaler, type ModeState, type Scaler, type ScalerOptions } from './scaler/scaler.js';
import { createPodLoadReader, createPodScrape, createQueueReader, type PodScrape } from './scaler/queue.js';
import { createWeightController } from './balance/controller.js';
import { realTimers } from './sources/kubernetes/timers.js';
import type { Logger } from './observability/log.js';
import { createMetrics } from './observability/metrics.js';
import { startAdminServer, type AdminServer, type FleetStatus } from './observability/admin.js';
import { createMetricsService } from './scaler/metrics-service.js';
import { createFleetStats, type FleetStats } from './scaler/stats.js';
import { DEFAULT_GROUP } from './xds/cache.js';
import { TypeUrl } from './xds/resources.js';
import { watchEndpointsFile } from './sources/file/endpoints-file.js';
import { createSnapshotCache } from './xds/cache.js';
import { createPublisher } from './xds/publisher.js';
import { createXdsServer, type XdsServer } from './xds/server.js';
import { createTlsSource, type TlsFiles } from './xds/tls.js';
import { startMemoryRelease } from './observability/memory.js';
import type { IdentityRule } from './xds/identity.js';
import type { StreamLimits } from './xds/stream.js';

/** Where the model comes from. */
export type Discovery =
  | { readonly kind: 'file'; readonly path: string }
  | {
      readonly kind: 'kubernetes';
      readonly kubeConfig: KubeConfig;
      /** Empty: all namespaces. */
      readonly namespaces: readonly string[];
      readonly serviceSelector: string;
      /** The Envoy listener (Kubernetes has no place for it). */
      readonly listener: ListenerSpec;
      readonly holdOffMs?: number;
      readonly maxDelayMs?: number;
    };

/** Where a scaling policy is read from. */
export type PolicyLocation = { readonly kind: 'file'; readonly path: string } | { readonly kind: 'configmap'; readonly namespace: string; readonly name: string };

/** Settings of the scaler (`inferplane serve --scaler`). */
export interface ScalerSettings {
  readonly policy: PolicyLocation;
  /** A candidate policy decided beside the active one and never applied (`--shadow-policy`). */
  readonly shadowPolicy?: PolicyLocation;
  /** Decide and log only. */
  readonly dryRun: boolean;
  /**
   * The API server for Deployments, the policy ConfigMap and the Lease. Without one, replica counts come from
   * the served endpoints and only a dry run is possible.
   */
  readonly kubeConfig?: KubeConfig;
  /** Leader election (needs `kubeConfig`); without it this process must be the only scaler. */
  readonly lease?: { readonly namespace: string; readonly name: string; readonly durationMs?: number; readonly renewDeadlineMs?: number; readonly retryPeriodMs?: number };
  /**
   * The host (e.g. the pod IP) at which other replicas reach this one's xDS port: published on the Lease while
   * leading, so followers forward their Envoys' stats here. Without it, a leader sees only its own Envoys.
   */
  readonly advertiseHost?: string;
  readonly intervalMs?: number;
}

/** Settings of `inferplane serve`. */
export interface ServeOptions {
  readonly discovery: Discovery;
  /** `host:port` for xDS gRPC. */
  readonly xdsAddress: string;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly limits: StreamLimits;
  readonly maxMessageBytes: number;
  /** TLS on the xDS port (mTLS with a client CA); files re-read when they change. Plaintext when absent. */
  readonly tls?: TlsFiles;
  /** With mTLS: nodes (xDS and stats) must prove their id with their client certificate. */
  readonly identity?: IdentityRule;
  /** Largest Envoy stats message (MetricsService) accepted; larger ones are logged, counted and refused. */
  readonly maxStatsMessageBytes?: number;
  readonly log: Logger;
  /** Identifies this replica in Events, the Lease and `control_plane.identifier`. */
  readonly instance?: string;
  /** Runs the scaler in this process. */
  readonly scaler?: ScalerSettings;
  /**
   * How often to scrape the admin endpoint of connected nodes that offer one (node metadata
   * `inferplane.io/stats-url`): pull mode, for fleets that cannot push stats. 0 turns it off. Default 1 s.
   */
  readonly scrapeIntervalMs?: number;
}

/** A running control plane. */
export interface Running {
  readonly xds: XdsServer;
  readonly xdsPort: number;
  readonly admin: AdminServer;
  readonly scaler?: Scaler;
  /** True once the source has its full first view and a complete snapshot is served. */
  ready(): boolean;
  /**
   * Graceful stop: the scaler stops acting, streams (xDS and stats) are closed with UNAVAILABLE so Envoys move to
   * another replica, then the scaler's Lease is released and ports close.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The modules that talk to a Kubernetes API, loaded only when there is one: @kubernetes/client-node alone takes
 * ~0.5 s to load, which an endpoints-file server (and its readiness after a restart) need not pay.
 */
async function kubernetesModules() {
  const [{ createKubernetesSource }, { createEventRecorder }, { createLeaderElector }, { configMapPolicySource }, { deploymentStore }] = await Promise.all([
    import('./sources/kubernetes/source.js'), import('./sources/kubernetes/events.js'), import('./scaler/lease.js'),
    import('./scaler/policy-configmap.js'), import('./scaler/replicas.js'),
  ]);
  return { createKubernetesSource, createEventRecorder, createLeaderElector, configMapPolicySource, deploymentStore };
}
type KubernetesModules = Awaited<ReturnType<typeof kubernetesModules>>;

/** Wires a discovery source, the snapshot cache, the xDS server and the admin server together. */
export async function serve(o: ServeOptions): Promise<Running> {
  const sc = o.scaler;
  if (sc && !sc.kubeConfig && (!sc.dryRun || sc.policy.kind === 'configmap' || sc.lease)) throw new Error('the scaler needs a Kubernetes API (kubeConfig) unless it is a dry run with a policy file');
  const k8s = o.discovery.kind === 'kubernetes' || sc?.kubeConfig ? await kubernetesModules() : undefined;
  const metrics = createMetrics({ process: true });
  const cache = createSnapshotCache();
  const publisher = createPublisher({ cache, log: o.log, metrics, maxResponseBytes: o.limits.maxResponseBytes });
  // One scrape of a service's pods serves the scaler (queues, idlest-first) and the load-aware weights alike.
  const scrape = createPodScrape({ pods: (service) => podAddresses(publisher.model(), service) });
  const weights = createWeightController({
    scrape, log: o.log, metrics, timers: realTimers,
    services: () => publisher.model()?.services.filter((s) => s.settings.loadAwareWeights).map((s) => s.name) ?? [],
    // Only these services' endpoints changed: the EDS fast path.
    onWeights: (changed) => void (sourceModel && publish(sourceModel, new Set(changed.keys()))),
  });
  // Envoy's protos load on first use (~0.2 s): at startup, not in the middle of serving the first large build.
  envoyRoot();
  // What the source last gave, and the modes its playbooks follow: either changing republishes.
  let sourceModel: Model | undefined;
  let modes: ReadonlyMap<string, ModeState> = new Map();
  const modeOf = (service: string) => modes.get(service)?.mode ?? 'normal';
  const publish = (m: Model, endpointsOnly?: ReadonlySet<string>, eventAt?: number): Promise<unknown> => {
    sourceModel = m;
    return publisher.publish(applyWeights(applyPlaybooks(m, modeOf), (s) => weights.weights(s)), endpointsOnly, eventAt).catch((e: unknown) => o.log.error('snapshot build failed; keeping the last good one', { error: e instanceof Error ? e.stack ?? e.message : String(e) }));
  };
  const stats = createFleetStats();
  if (o.identity && !o.tls?.clientCaFile) throw new Error('node identity needs mTLS (a client CA)');
  const tls = o.tls && createTlsSource(o.tls, { log: o.log, metrics });
  if (!tls && !/^(127\.|localhost:|\[::1\]:)/.test(o.xdsAddress)) {
    o.log.warn('xDS and the MetricsService are served in plaintext on a non-loopback address: anyone who can reach it gets the fleet\'s configuration and can push stats; use --tls-cert, --tls-key and --tls-client-ca', { xds: o.xdsAddress });
  }
  const xds = createXdsServer({
    ...(tls && { tls: tls.server }),
    cache, log: o.log, metrics, limits: o.limits, maxMessageBytes: o.maxMessageBytes, controlPlane: `inferplane ${o.instance ?? ''}`.trim(),
    ...(o.identity && { identity: o.identity }),
    services: [createMetricsService({
      stats, log: o.log, metrics,
      ...(o.maxStatsMessageBytes !== undefined && { maxMessageBytes: o.maxStatsMessageBytes }),
      ...(o.identity && tls && { identity: { rule: o.identity, isReplica: (c) => tls.isReplica(c) } }),
    })],
  });
  // Served services, from the clusters (`<service>/<port>`) of the default group.
  const servedServices = () => [...new Set([...(cache.get(DEFAULT_GROUP)?.types[TypeUrl.Cluster].resources.keys() ?? [])].map((c) => c.slice(0, c.lastIndexOf('/'))))].sort();
  const fleetServices = (now: number): FleetStatus['services'] => {
    stats.expire(now);
    return Object.fromEntries(servedServices().map((s) => {
      const sample = stats.sample(s, now);
      return [s, sample ? { activeRequests: sample.activeRequests, envoys: sample.envoys, oldestReportAgeMs: now - sample.at } : null];
    }));
  };
  const fleet = (): FleetStatus => {
    const now = Date.now();
    return { services: fleetServices(now), reporters: stats.reporters().map((r) => ({ nodeId: r.nodeId, ageMs: now - r.at, envoys: r.envoys })) };
  };
  const fleetGauge = (read: (v: NonNullable<FleetStatus['services'][string]>) => number) => () =>
    Object.entries(fleetServices(Date.now())).flatMap(([service, v]) => (v === null ? [] : [[{ service }, read(v)] as const]));
  metrics.gauge('inferplane_fleet_active_requests', 'In-flight requests per service, summed over the Envoys reporting stats', ['service'], fleetGauge((v) => v.activeRequests));
  metrics.gauge('inferplane_fleet_reporting_envoys', 'Envoys whose fresh stats make up each service\'s total', ['service'], fleetGauge((v) => v.envoys));
  metrics.gauge('inferplane_fleet_stats_age_seconds', 'Age of the oldest report in each service\'s total', ['service'], fleetGauge((v) => v.oldestReportAgeMs / 1000));
  const version = (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  metrics.gauge('inferplane_build_info', 'Always 1; the labels say which inferplane (package.json version) on which Node runs', ['version', 'node'], () => [[{ version, node: process.version }, 1]]);
  metrics.gauge('inferplane_xds_streams_by_sync_state', 'xDS streams per type by where they stand: synced, pending (sent, not yet answered), nacked, not-sent, stale', ['type', 'state'], () =>
    xds.syncCounts().map(({ type, state, streams }) => [{ type, state }, streams] as const));
  let sourceReady: () => boolean;
  let notReadyReason: (() => string | undefined) | undefined;
  let configProblems: (() => readonly string[] | undefined) | undefined;
  let stopSource: () => Promise<void>;
  const d = o.discovery;
  if (d.kind === 'file') {
    let first: Promise<unknown> | undefined;
    const watch = watchEndpointsFile(d.path, { log: o.log, onModel: (m, changedAt) => {
      const p = publish(m, undefined, changedAt);
      first ??= p;
    } });
    // The file is the whole truth and is at hand: serve once it is published (or refused), not before.
    await watch.initial;
    await first;
    sourceReady = () => true;
    stopSource = async () => watch.close();
    metrics.gauge('inferplane_endpoints_file_valid', '1 while the endpoints file\'s latest version is valid, 0 while it is refused or unreadable (the last good one, if any, keeps serving)', [], () => (watch.problems() ? 0 : 1));
    configProblems = () => {
      const problems = watch.problems();
      return problems && problems.map((p) => `endpoints file: ${p}`);
    };
    notReadyReason = () => {
      const problems = watch.problems();
      return problems && `the endpoints file is invalid: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more problems; see the log)` : ''}`;
    };
  } else {
    const source = k8s!.createKubernetesSource({
      kubeConfig: d.kubeConfig,
      namespaces: d.namespaces,
      serviceSelector: d.serviceSelector,
      listener: d.listener,
      log: o.log,
      events: k8s!.createEventRecorder(d.kubeConfig, o.log, o.instance ?? 'inferplane'),
      onModel: (m, endpointsOnly, eventAt) => void publish(m, endpointsOnly, eventAt),
      ...(d.holdOffMs !== undefined && { holdOffMs: d.holdOffMs }),
      ...(d.maxDelayMs !== undefined && { maxDelayMs: d.maxDelayMs }),
    });
    source.start();
    sourceReady = source.synced;
    stopSource = source.stop;
  }
  const ready = () => sourceReady() && publisher.ready();
  const xdsPort = await xds.listen(o.xdsAddress);
  const stopScraping = startScraping(o.scrapeIntervalMs ?? 1_000, createStatsScraper({
    targets: () => xds.statsTargets(),
    stats, log: o.log, metrics,
  }));
  const scaler = o.scaler && startScaler(o.scaler, {
    k8s,
    stats, metrics, log: o.log, instance: o.instance ?? 'inferplane', xdsPort,
    counts: (service) => endpointCounts(publisher.model(), service),
    scrape,
    known: (service) => publisher.model()?.services.some((s) => s.name === service) ?? false,
    onModes: (next) => {
      modes = next;
      if (sourceModel) void publish(sourceModel);
    },
    ...(tls && { relayChannel: () => tls.clientChannel() }),
  });
  const memory = startMemoryRelease({ load: () => xds.streamCount(), log: o.log, metrics });
  weights.start();
  const admin = await startAdminServer(o.adminHost, o.adminPort, { xds, cache, metrics, ready, fleet, model: publisher.model, ...(notReadyReason && { notReadyReason }), ...(configProblems && { configProblems }), ...(scaler && { scaler: scaler.scaler.status, forceMode: scaler.scaler.force }), weights: weights.status });
  o.log.info('inferplane serving', { xds: o.xdsAddress.replace(/:\d+$/, `:${xdsPort}`), admin: `${o.adminHost}:${admin.port}`, discovery: d.kind, ...(d.kind === 'file' && { endpointsFile: d.path }), ready: ready() });
  return {
    xds,
    xdsPort,
    admin,
    ...(scaler && { scaler: scaler.scaler }),
    ready,
    async stop(graceMs = 5_000) {
      memory.stop();
      weights.stop();
      await stopScraping();
      await scaler?.stopActing();
      await stopSource();
      // Envoys (their xDS and stats streams) move to another replica before the Lease goes: the next leader
      // then counts them itself instead of deciding on the half of the fleet that was already there.
      await xds.shutdown(graceMs);
      await scaler?.release();
      tls?.close();
      await admin.close();
    },
  };
}

/** Replica counts of a served service: its endpoints (terminating ones excluded), the ready ones as ready. */
function endpointCounts(model: Model | undefined, service: string): ReplicaCounts | undefined {
  const svc = model?.services.find((s) => s.name === service);
  if (!svc) return undefined;
  const live = svc.endpoints.filter((e) => !e.terminating);
  return { desired: live.length, ready: live.filter((e) => e.ready).length };
}

/** The ready endpoints of a served service on its first port: where its model servers' /metrics are. */
function podAddresses(model: Model | undefined, service: string): { address: string; port: number }[] {
  const svc = model?.services.find((s) => s.name === service);
  const port = svc?.ports[0]?.name;
  if (!svc || port === undefined) return [];
  return svc.endpoints.filter((e) => e.ready && !e.terminating && e.ports[port] !== undefined).map((e) => ({ address: e.address, port: e.ports[port]! }));
}

/** Builds and starts the scaler and its parts: policy source, replica store, leader election. */
function startScaler(o: ScalerSettings, d: Pick<ScalerOptions, 'onModes' | 'known'> & { stats: FleetStats; metrics: Metrics; log: Logger; instance: string; xdsPort: number; counts: (service: string) => ReplicaCounts | undefined; scrape: PodScrape; k8s: KubernetesModules | undefined; relayChannel?: () => { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } }) {
  const common = { log: d.log, metrics: d.metrics };
  const k8s = d.k8s;
  const events = o.kubeConfig && k8s!.createEventRecorder(o.kubeConfig, d.log, d.instance);
  // A new policy is decided on at once, not at the next round: a mode it forces reaches the data plane now.
  let scaler: Scaler | undefined;
  const onPolicy = (role: 'active' | 'shadow') => (role === 'active' ? { onPolicy: () => void scaler?.tick() } : {});
  const source = (where: PolicyLocation, role: 'active' | 'shadow') => where.kind === 'file'
    ? filePolicySource(where.path, { ...common, role, ...onPolicy(role) })
    : k8s!.configMapPolicySource({ ...common, role, ...onPolicy(role), kubeConfig: o.kubeConfig!, namespace: where.namespace, name: where.name, events: events!, timers: realTimers });
  const policy = source(o.policy, 'active');
  const shadow = o.shadowPolicy && source(o.shadowPolicy, 'shadow');
  // Unique per process even where two share a host name (client-go adds a random suffix the same way).
  const identity = `${d.instance}_${randomBytes(4).toString('hex')}`;
  const election = o.lease && k8s!.createLeaderElector({
    kubeConfig: o.kubeConfig!,
    namespace: o.lease.namespace,
    name: o.lease.name,
    identity,
    timers: realTimers,
    log: d.log,
    ...(o.lease.durationMs !== undefined && { leaseDurationMs: o.lease.durationMs }),
    ...(o.lease.renewDeadlineMs !== undefined && { renewDeadlineMs: o.lease.renewDeadlineMs }),
    ...(o.lease.retryPeriodMs !== undefined && { retryPeriodMs: o.lease.retryPeriodMs }),
    ...(o.advertiseHost !== undefined && { annotations: { [STATS_ADDRESS_ANNOTATION]: `${o.advertiseHost.includes(':') ? `[${o.advertiseHost}]` : o.advertiseHost}:${d.xdsPort}` } }),
  });
  if (election && o.advertiseHost === undefined) d.log.warn('no advertise address: other replicas cannot forward their Envoys\' stats to this one when it leads, so a leader sees only the Envoys connected to it');
  const { scrape } = d;
  scaler = createScaler({
    stats: d.stats,
    policy,
    ...(shadow && { shadow }),
    queue: createQueueReader(scrape),
    podLoad: createPodLoadReader(scrape),
    store: o.kubeConfig ? k8s!.deploymentStore(o.kubeConfig) : endpointStore(d.counts),
    dryRun: o.dryRun,
    ...(election && { election, relay: createStatsRelay({ stats: d.stats, identity, log: d.log, ...(d.relayChannel && { channel: d.relayChannel }) }) }),
    log: d.log,
    metrics: d.metrics,
    timers: realTimers,
    ...(d.onModes && { onModes: d.onModes }),
    ...(d.known && { known: d.known }),
    ...(o.intervalMs !== undefined && { intervalMs: o.intervalMs }),
  });
  policy.start();
  shadow?.start();
  election?.start();
  scaler.start();
  return {
    scaler,
    /** Stops deciding and writing. */
    stopActing: () => scaler.stop(),
    /** Releases the Lease (another replica takes over at once) and the policy watch: call after stopActing. */
    async release() {
      await election?.stop();
      await policy.stop();
      await shadow?.stop();
    },
  };
}

/** Runs scrape rounds `intervalMs` apart (from the end of one to the start of the next); returns the stop. */
function startScraping(intervalMs: number, scraper: StatsScraper): () => Promise<void> {
  if (intervalMs <= 0) return async () => undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> = Promise.resolve();
  const loop = () => {
    round = scraper.scrape().finally(() => {
      if (!stopped) timer = setTimeout(loop, intervalMs).unref();
    });
  };
  loop();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await round;
  };
}

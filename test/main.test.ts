import { expect } from 'chai';
import { eventually } from './support/harness.js';
import net from 'node:net';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, inferplane, spawnChild } from './support/processes.js';

const run = (args: string[]) => inferplane(args);

describe('inferplane CLI', () => {
  it('serves the embedded example by default, becomes ready, and exits 0 on SIGTERM', async function () {
    this.timeout(30_000);
    const p = run(['serve', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0']);
    await eventually(() => p.err().includes('"inferplane serving"'), 'the serving log line', 20_000);
    const line = JSON.parse(p.err().split('\n').find((l) => l.includes('"inferplane serving"'))!);
    expect(line.ready).to.equal(true);
    expect(line.endpointsFile).to.match(/examples\/endpoints\.yaml$/);
    const ready = await fetch(`http://${line.admin}/readyz`);
    expect(ready.status).to.equal(200);
    p.child.kill('SIGTERM');
    expect(await p.exited).to.equal(0);
  });

  it('runs the vLLM simulator, which answers a completion', async function () {
    this.timeout(30_000);
    const p = run(['sim-vllm', '--host', '127.0.0.1', '--port', '0', '--model', 'tiny']);
    await eventually(() => p.err().includes('vLLM simulator serving'), 'the serving log line', 20_000);
    const line = JSON.parse(p.err().split('\n').find((l) => l.includes('vLLM simulator serving'))!);
    const r = await fetch(`http://${line.address}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'tiny', prompt: 'hi', max_tokens: 2 }) });
    expect(((await r.json()) as any).choices[0].text).to.equal('token0 token1');
    p.child.kill('SIGTERM');
    expect(await p.exited).to.equal(0);
  });

  it('refuses unknown commands and bad flags in one line, pointing at --help and at the nearest name, exit 2', async function () {
    this.timeout(30_000);
    const a = run(['launch']);
    expect(await a.exited).to.equal(2);
    expect(a.err()).to.equal('inferplane: unknown command "launch"; the commands are serve, sim-vllm, status, mode and simulate\nsee `inferplane --help`\n');
    const typo = run(['simulat', 'x.yaml']);
    expect(await typo.exited).to.equal(2);
    expect(typo.err()).to.equal('inferplane: unknown command "simulat"; did you mean "inferplane simulate"?\nsee `inferplane --help`\n');
    const flag = run(['simulate', 'x.yaml', '--peak-rp', '5']);
    expect(await flag.exited).to.equal(2);
    expect(flag.err()).to.equal('inferplane: unknown option --peak-rp; did you mean --peak-rps?\nsee `inferplane simulate --help`\n');
    const b = run(['serve', '--xds-address', 'nowhere']);
    expect(await b.exited).to.equal(2);
    expect(b.err()).to.contain('--xds-address must be HOST:PORT, got "nowhere"');
  });

  it('gives each command its own --help and options, refusing the other command\'s by name, exit 2', async function () {
    this.timeout(30_000);
    const help = run(['serve', '--help']);
    expect(await help.exited).to.equal(0);
    expect(help.out()).to.contain('usage: inferplane serve').and.not.contain('usage: inferplane sim-vllm');
    const cases = [
      [['serve', '--port', '9999'], 'inferplane: --port is an option of "inferplane sim-vllm", not of "inferplane serve"'],
      [['sim-vllm', '--xds-address', '127.0.0.1:0'], 'inferplane: --xds-address is an option of "inferplane serve", not of "inferplane sim-vllm"'],
      [['sim-vllm', '--port', '99999'], 'inferplane: --port must be a port number from 0 to 65535, got "99999"'],
      [['serve', '--no-such-flag'], 'inferplane: unknown option --no-such-flag'],
      [['serve', '--log-format', 'xml'], 'inferplane: --log-format must be json or text, got "xml"'],
      [['serve', 'extra'], 'inferplane: unexpected argument "extra" after "inferplane serve"'],
      [['serve', '--shadow-policy', 'candidate.yaml'], 'inferplane: --shadow-policy needs --scaler'],
      [['--port', '1'], 'inferplane: a command is required first'],
      [['simulate', 'x.yaml', '--peak-rps', '-5'], 'inferplane: --peak-rps takes a value, and "-…" after it reads as another option; write --peak-rps=VALUE for a value that starts with "-"'],
      [['simulate', 'x.yaml', '--peak-rps'], 'inferplane: --peak-rps takes a value: --peak-rps VALUE'],
    ] as const;
    await Promise.all(cases.map(async ([args, message]) => {
      const p = run([...args]);
      expect(await p.exited, args.join(' ')).to.equal(2);
      expect(p.err().split('\n')[0], args.join(' ')).to.contain(message);
      expect(p.err(), args.join(' ')).not.to.match(/\n\s+at /); // no stack trace
      expect(p.err().trimEnd().split('\n'), `${args.join(' ')}: one line and where the help is`).to.have.length(2);
    }));
  });

  it('npx inferplane works from the clone after npm ci (the package links its own command)', async function () {
    this.timeout(60_000);
    const help = spawnChild('npx', ['--no-install', 'inferplane', 'status', '--help']);
    expect(await help.exited, help.err()).to.equal(0);
    expect(help.out()).to.match(/^usage: inferplane status/);
  });

  it('npm start passes SIGTERM to the server: it shuts down and frees its ports when npm is stopped', async function () {
    this.timeout(60_000);
    const npm = spawnChild('npm', ['start', '--', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0']);
    const serving = await npm.logLine('inferplane serving', 40_000);
    const admin = `http://${serving['admin']}/readyz`;
    expect((await fetch(admin)).status).to.equal(200);
    npm.child.kill('SIGTERM');
    await npm.exited;
    await npm.logLine('shutting down');
    await eventually(async () => (await fetch(admin).then(() => 'open', () => 'closed')) === 'closed', 'the admin port closed', 10_000);
  });

  it('says which address is taken and by which flag, in one line, exit 1', async function () {
    this.timeout(30_000);
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const cases = [
        [['serve', '--xds-address', `127.0.0.1:${port}`, '--admin-address', '127.0.0.1:0'], `inferplane: 127.0.0.1:${port} is already in use (--xds-address)`],
        [['serve', '--xds-address', '127.0.0.1:0', '--admin-address', `127.0.0.1:${port}`], `inferplane: 127.0.0.1:${port} is already in use (--admin-address)`],
        [['sim-vllm', '--host', '127.0.0.1', '--port', String(port)], `inferplane: 127.0.0.1:${port} is already in use (--port)`],
      ] as const;
      for (const [args, message] of cases) {
        const p = run([...args]);
        expect(await p.exited, args.join(' ')).to.equal(1);
        expect(p.err()).to.contain(message);
        expect(p.err()).not.to.match(/\n\s+at /);
      }
    } finally {
      taken.close();
    }
  });

  it('shows an invalid endpoints file beyond the log: /readyz says why, the validity gauge is 0, until it is fixed', async function () {
    this.timeout(30_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-bad-file-'));
    const file = path.join(dir, 'endpoints.yaml');
    fs.writeFileSync(file, 'services:\n  - name: a\n    endpoints:\n      - { address: 10.0.0.1, port: 70000 }\n');
    const p = run(['serve', '--endpoints', file, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0']);
    try {
      await eventually(() => p.err().includes('"inferplane serving"'), 'the serving log line', 20_000);
      expect(p.err()).to.contain('invalid endpoints file; nothing is served until it is fixed').and.not.contain('keeping the last good');
      const line = JSON.parse(p.err().split('\n').find((l) => l.includes('"inferplane serving"'))!);
      const ready = await fetch(`http://${line.admin}/readyz`);
      expect(ready.status).to.equal(503);
      expect(((await ready.json()) as any).reason).to.match(/^the endpoints file is invalid: .*endpoints\.yaml:4:\d+: services\[0\]\.endpoints\[0\]\.port: 70000 is out of range/);
      const metrics = async () => (await (await fetch(`http://${line.admin}/metrics`)).text()).split('\n').find((l) => l.startsWith('inferplane_endpoints_file_valid'));
      expect(await metrics()).to.equal('inferplane_endpoints_file_valid 0');
      fs.writeFileSync(file, 'services:\n  - name: a\n    endpoints:\n      - { address: 10.0.0.1, port: 7000 }\n');
      await eventually(async () => (await fetch(`http://${line.admin}/readyz`)).status === 200, 'ready once fixed');
      expect(await metrics()).to.equal('inferplane_endpoints_file_valid 1');
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('status: tables from a running serve; a one-line error and exit 1 when the admin endpoint is not there', async function () {
    this.timeout(30_000);
    const p = run(['serve', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0']);
    try {
      await eventually(() => p.err().includes('"inferplane serving"'), 'the serving log line', 20_000);
      const line = JSON.parse(p.err().split('\n').find((l) => l.includes('"inferplane serving"'))!);
      const ok = run(['status', 'services', '--admin', `http://${line.admin}`]);
      expect(await ok.exited).to.equal(0);
      expect(ok.out()).to.match(/^SERVICE\s+IN FLIGHT/);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
    const down = run(['status', '--admin', `http://127.0.0.1:${await freePort()}`]);
    expect(await down.exited).to.equal(1);
    expect(down.err().trim().split('\n')).to.have.length(1);
    expect(down.err()).to.match(/^inferplane status: cannot reach inferplane's admin endpoint at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });

  it('says no cluster was found, what needed one and the way without, when there is no kubeconfig at all, exit 2', async function () {
    this.timeout(30_000);
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-home-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, KUBECONFIG: '' };
      delete env['KUBERNETES_SERVICE_HOST'];
      const p = inferplane(['serve', '--discovery', 'kubernetes', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], { env });
      expect(await p.exited).to.equal(2);
      expect(p.err().split('\n')[0]).to.match(/^inferplane: no Kubernetes cluster found .*, and --discovery kubernetes needs one: pass --kubeconfig FILE, or serve an endpoints file with --discovery file/);
      // Discovery is already the file here: what the scaler lacks is permission to write, and the way out is a dry run.
      const policy = path.join(home, 'policy.yaml');
      fs.writeFileSync(policy, 'services: {}\n');
      const s = inferplane(['serve', '--scaler', '--policy', policy, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], { env });
      expect(await s.exited).to.equal(2);
      expect(s.err().split('\n')[0]).to.match(/and the scaler \(it resizes Deployments\) needs one: pass --kubeconfig FILE, or add --dry-run/);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it('says in one line when --kubeconfig names a missing or malformed file, exit 2', async function () {
    this.timeout(30_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferplane-kubeconfig-'));
    try {
      const malformed = path.join(dir, 'bad.yaml');
      fs.writeFileSync(malformed, 'clusters: [\n');
      const cases = [
        [path.join(dir, 'missing.yaml'), `inferplane: --kubeconfig ${path.join(dir, 'missing.yaml')}: cannot read it (ENOENT)`],
        [malformed, `inferplane: --kubeconfig ${malformed}: not a kubeconfig: `],
      ] as const;
      for (const [file, message] of cases) {
        const p = inferplane(['serve', '--discovery', 'kubernetes', '--kubeconfig', file, '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0']);
        expect(await p.exited).to.equal(2);
        expect(p.err().split('\n')[0]).to.satisfy((line: string) => line.startsWith(message));
        expect(p.err()).not.to.contain('    at ');
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the compose demo\'s dry-run scaler on files alone, with its decisions on /status/scaler', async function () {
    this.timeout(30_000);
    const p = run(['serve', '--xds-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--scaler', '--dry-run', '--policy', 'examples/compose-scaling-policy.yaml']);
    await eventually(() => p.err().includes('"inferplane serving"'), 'the serving log line', 20_000);
    const line = JSON.parse(p.err().split('\n').find((l) => l.includes('"inferplane serving"'))!);
    await eventually(async () => ((await (await fetch(`http://${line.admin}/status/scaler`)).json()) as any).decisions.length > 0, 'a decision');
    const status = (await (await fetch(`http://${line.admin}/status/scaler`)).json()) as any;
    expect(status).to.include({ role: 'single', dryRun: true, replicasFrom: 'endpoints' });
    // examples/endpoints.yaml serves llama-8b on 3 endpoints; no Envoy reports, so the scaler holds and says why.
    expect(status.services['llama-8b'].last).to.include({ replicas: 3, action: 'hold', reason: 'no-data' });
    p.child.kill('SIGTERM');
    expect(await p.exited).to.equal(0);
  });

  it('refuses scaler flags that do not fit, naming the flag, exit 2', async function () {
    this.timeout(30_000);
    const cases = [
      [['--scaler'], '--scaler needs exactly one of --policy FILE and --policy-configmap NS/NAME'],
      [['--dry-run'], '--dry-run needs --scaler'],
      [['--policy', 'p.yaml'], '--policy needs --scaler'],
      [['--scaler', '--policy-configmap', 'just-a-name'], '--policy-configmap must be NAMESPACE/NAME, got "just-a-name"'],
      [['--scaler', '--dry-run', '--policy', 'p.yaml', '--lease', 'ns/l'], '--lease needs Kubernetes; a dry run on files runs alone'],
    ] as const;
    await Promise.all(cases.map(async ([args, message]) => {
      const p = run(['serve', ...args]);
      expect(await p.exited, args.join(' ')).to.equal(2);
      expect(p.err()).to.contain(message);
    }));
  });
});

/**
 * Key Protect API over HTTP on loopback: `POST /api/v2/keys/{id}/actions/wrap` and `/unwrap` against a bare
 * Hono hello-world route served the same way (@hono/node-server, its own process) and against a bare Hono
 * route on the API's own server making the same engine.unwrap call (no auth, validation, rate limit or
 * audit). autocannon drives them from this process, rounds interleaved so that drift hits all targets alike.
 *
 *   npm run bench                  # 5 rounds × 5 s per target; writes bench/results/http.json
 *   BENCH_SMOKE=1 npm run bench    # 1 round × 1 s
 *
 * Knobs: BENCH_HTTP_ROUNDS (5), BENCH_HTTP_SECONDS (5), BENCH_HTTP_CONNECTIONS (16),
 * BENCH_HTTP_CPU_PROF=<dir> (run the engine servers under `node --cpu-prof`, profiles written to <dir>).
 * The engine server runs with authentication (API key), audit logging to a file, rate limiting off and
 * no DEK cache: every wrap and unwrap is a SoftHSM2 call.
 * Besides requests/s, each run charges the server process's CPU time (process.cpuUsage, user + system, read
 * over IPC before and after the run) to the requests it served: `cpuUsPerRequest`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import autocannon from 'autocannon'
import { median, report, SMOKE, type Row } from './harness.js'

const rounds = SMOKE ? 1 : Number(process.env['BENCH_HTTP_ROUNDS'] ?? 5)
const seconds = SMOKE ? 1 : Number(process.env['BENCH_HTTP_SECONDS'] ?? 5)
const connections = Number(process.env['BENCH_HTTP_CONNECTIONS'] ?? 16)
const cpuProfDir = process.env['BENCH_HTTP_CPU_PROF']

interface Started {
  child: ChildProcess
  info: { url: string; bareUrl?: string; keyId?: string; ciphertext?: string; apiKey?: string }
}

async function start(mode: 'engine' | 'hello', env: Record<string, string> = {}): Promise<Started> {
  const prof =
    cpuProfDir !== undefined && mode === 'engine' ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', 'bench/http-server.ts', mode], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  })
  const info = await new Promise<Started['info']>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      const line = out.split('\n')[0]
      if (out.includes('\n') && line !== undefined) resolve(JSON.parse(line) as Started['info'])
    })
    child.once('exit', (code) => {
      reject(new Error(`bench server (${mode}) exited with ${code}`))
    })
  })
  return { child, info }
}

async function stop(s: Started): Promise<void> {
  const exited = new Promise((r) => s.child.once('exit', r))
  s.child.kill('SIGTERM')
  await exited
}

/** The server's CPU time so far (user + system), in µs. */
async function cpuOf(s: Started): Promise<number> {
  return new Promise((resolve) => {
    s.child.once('message', (m) => {
      const u = m as NodeJS.CpuUsage
      resolve(u.user + u.system)
    })
    s.child.send('cpu')
  })
}

const hello = await start('hello')
const engine = await start('engine')
const cached = await start('engine', { EKMS_DEK_CACHE: 'on' })
try {
  const { url, keyId, ciphertext, apiKey } = engine.info
  const headers = {
    authorization: `Bearer ${apiKey ?? ''}`,
    'bluemix-instance': 'bench',
    'content-type': 'application/json',
  }
  const targets = [
    {
      name: 'hello world (bare Hono)',
      server: hello,
      url: `${hello.info.url}/hello`,
      headers: { 'content-type': 'application/json' },
      body: '{}',
    },
    {
      name: 'POST …/actions/wrap (generated DEK)',
      server: engine,
      url: `${url}/api/v2/keys/${keyId ?? ''}/actions/wrap`,
      headers,
      body: '{}',
    },
    {
      name: 'POST …/actions/unwrap',
      server: engine,
      url: `${url}/api/v2/keys/${keyId ?? ''}/actions/unwrap`,
      headers,
      body: JSON.stringify({ ciphertext }),
    },
    {
      name: 'bare Hono route + engine.unwrap, same server (no auth/validation/audit)',
      server: engine,
      url: `${engine.info.bareUrl ?? ''}/unwrap`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ciphertext }),
    },
    {
      name: 'POST …/actions/unwrap, EKMS_DEK_CACHE=on (cache hits)',
      server: cached,
      url: `${cached.info.url}/api/v2/keys/${cached.info.keyId ?? ''}/actions/unwrap`,
      headers: { ...headers, authorization: `Bearer ${cached.info.apiKey ?? ''}` },
      body: JSON.stringify({ ciphertext: cached.info.ciphertext }),
    },
  ]
  // Warm-up (JIT, session pools, connection set-up), not measured.
  for (const t of targets) {
    await autocannon({
      url: t.url,
      method: 'POST',
      headers: t.headers,
      body: t.body,
      connections,
      amount: SMOKE ? 500 : 5000,
    })
  }
  const per = targets.map((): { rps: number; p50: number; p99: number; cpuUs: number }[] => [])
  for (let r = 0; r < rounds; r++) {
    for (const [i, t] of targets.entries()) {
      const cpu0 = await cpuOf(t.server)
      const res = await autocannon({
        url: t.url,
        method: 'POST',
        headers: t.headers,
        body: t.body,
        connections,
        duration: seconds,
      })
      const cpu1 = await cpuOf(t.server)
      if (res.non2xx > 0 || res.errors > 0) {
        throw new Error(`${t.name}: ${res.non2xx} non-2xx responses, ${res.errors} errors`)
      }
      per[i]?.push({
        rps: res.requests.average,
        p50: res.latency.p50,
        p99: res.latency.p99,
        cpuUs: (cpu1 - cpu0) / res['2xx'],
      })
    }
  }
  const rows: Row[] = targets.map((t, i) => {
    const xs = per[i] ?? []
    return {
      name: t.name,
      opsPerSec: Math.round(median(xs.map((x) => x.rps))),
      runs: xs.map((x) => Math.round(x.rps)),
      p50_us: median(xs.map((x) => x.p50)) * 1000,
      p99_us: median(xs.map((x) => x.p99)) * 1000,
    }
  })
  const round = (x: number, digits = 3): number => Number(x.toFixed(digits))
  const ratio = (i: number, base = 0): { median: number; min: number; max: number } => {
    const xs = (per[i] ?? []).map((x, r) => x.rps / (per[base]?.[r]?.rps ?? Number.NaN))
    return { median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)) }
  }
  const cpuUsPerRequest = Object.fromEntries(
    targets.map((t, i) => {
      const xs = (per[i] ?? []).map((x) => x.cpuUs)
      return [t.name, { median: round(median(xs), 1), runs: xs.map((x) => round(x, 1)) }]
    }),
  )
  console.table(
    Object.entries(cpuUsPerRequest).map(([k, v]) => ({ task: k, 'server CPU µs/request': v.median })),
  )
  report(
    'http',
    `Key Protect API over HTTP (autocannon, ${connections} connections, ${rounds} × ${seconds} s)`,
    {
      settings: { rounds, seconds, connections },
      rows,
      ratios: {
        'unwrap / bare route + engine.unwrap (same server)': ratio(2, 3),
        'wrap / hello world': ratio(1),
        'unwrap / hello world': ratio(2),
        'bare route + engine.unwrap / hello world (ceiling with an HSM call)': ratio(3),
        'unwrap with DEK cache / hello world': ratio(4),
      },
      extra: { cpuUsPerRequest },
    },
  )
} finally {
  await stop(cached)
  await stop(engine)
  await stop(hello)
}

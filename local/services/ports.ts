/**
 * Free TCP ports on 127.0.0.1 for the services `local/services.ts` starts.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/**
 * Ports handed out by this process and not released yet, each with the abstract unix socket that
 * reserves it for the other processes on the machine (undefined where there are none).
 */
const reservations = new Map<number, Server | undefined>();

/** Lowest port we pick from when the ephemeral range is known. */
const LOWEST_PORT = 10_000;

/**
 * A port on 127.0.0.1 that nothing listens on right now, reserved for this process until
 * `releasePort`.
 *
 * The reservation is what keeps two harnesses apart: vitest runs test files in several worker
 * processes, and a colleague's run may share the machine. Checking that a port is free says
 * nothing about another process that checks it at the same time, nor about a port whose service
 * a test killed and is about to restart on it. So a port is handed out only to the process that
 * holds the abstract unix socket named after it (Linux), which the kernel frees when that
 * process dies, however it dies; then the port is checked by listening on it.
 *
 * The candidate is picked below the kernel's ephemeral range when that range is known: a port
 * the kernel may hand out as the local end of an outgoing connection could be taken while a
 * killed service is down, and its restart on the same port would then fail. Where the range is
 * unknown, the OS picks (listen on port 0). A process that is not a harness may still grab the
 * port before the service binds it; callers retry then.
 */
export async function freePort(): Promise<number> {
  const ephemeralLow = ephemeralRangeStart();
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const candidate =
      ephemeralLow === undefined
        ? await listenOnce(0)
        : LOWEST_PORT + Math.floor(Math.random() * (ephemeralLow - LOWEST_PORT));
    if (candidate === undefined || reservations.has(candidate)) continue;
    // Reserve first, then check: the other order lets two processes pass the check together.
    const reservation = await reserve(candidate);
    if (reservation === 'taken') continue;
    if (ephemeralLow !== undefined && (await listenOnce(candidate)) === undefined) {
      await closeServer(reservation);
      continue;
    }
    reservations.set(candidate, reservation);
    return candidate;
  }
  throw new Error('freePort: found no free port on 127.0.0.1 after 50 attempts');
}

/** Gives a port from `freePort` back, once nothing of ours listens on it any more. */
export async function releasePort(port: number): Promise<void> {
  if (!reservations.has(port)) return;
  const reservation = reservations.get(port);
  reservations.delete(port);
  await closeServer(reservation);
}

/**
 * Listens on the abstract unix socket `spillway-port-<port>`: the reservation, or 'taken' if
 * another process holds it. Abstract sockets are Linux only; elsewhere there is no reservation.
 */
async function reserve(port: number): Promise<Server | undefined | 'taken'> {
  if (process.platform !== 'linux') return undefined;
  const server = createServer();
  const outcome = await new Promise<'listening' | 'taken'>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve('taken');
      else reject(error);
    });
    server.listen({ path: `\0spillway-port-${port}` }, () => resolve('listening'));
  });
  if (outcome === 'taken') return 'taken';
  // Held for as long as the process wants the port, without keeping the process alive.
  server.unref();
  return server;
}

async function closeServer(server: Server | undefined): Promise<void> {
  if (server?.listening !== true) return;
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Listens on the port and closes again; the port actually bound, or undefined if it was taken. */
async function listenOnce(port: number): Promise<number | undefined> {
  const server = createServer();
  const bound = await new Promise<number | undefined>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') resolve(undefined);
      else reject(error);
    });
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : undefined);
    });
  });
  await closeServer(server);
  return bound;
}

/** First port of the kernel's ephemeral range (Linux), if it leaves room below it. */
function ephemeralRangeStart(): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    // Not Linux: let the OS pick.
    return undefined;
  }
  const low = Number(text.trim().split(/\s+/)[0]);
  return Number.isInteger(low) && low > LOWEST_PORT + 1_000 ? low : undefined;
}

/** Whether a service log says its port was taken, which is worth retrying on another port. */
export function mentionsAddressInUse(log: string): boolean {
  return /address already in use|EADDRINUSE/i.test(log);
}

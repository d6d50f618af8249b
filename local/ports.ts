/**
 * Free TCP ports on 127.0.0.1 for the services `local/services.ts` starts.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Ports handed out by this process, so that two harnesses started together never share one. */
const handedOut = new Set<number>();

/** Lowest port we pick from when the ephemeral range is known. */
const LOWEST_PORT = 10_000;

/**
 * A port on 127.0.0.1 that nothing listens on right now.
 *
 * The candidate is checked by listening on it. It is picked below the kernel's ephemeral
 * range when that range is known: a port the kernel may hand out as the local end of an
 * outgoing connection could be taken while a killed service is down, and its restart on the
 * same port would then fail. Where the range is unknown, the OS picks (listen on port 0).
 * Another process may still grab the port before the service binds it; callers retry then.
 */
export async function freePort(): Promise<number> {
  const ephemeralLow = ephemeralRangeStart();
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const candidate =
      ephemeralLow === undefined
        ? 0
        : LOWEST_PORT + Math.floor(Math.random() * (ephemeralLow - LOWEST_PORT));
    if (candidate !== 0 && handedOut.has(candidate)) continue;
    const port = await listenOnce(candidate);
    if (port === undefined || handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('freePort: found no free port on 127.0.0.1 after 50 attempts');
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
  if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
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

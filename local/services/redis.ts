/**
 * Redis: the primary and its replica (ElastiCache's replica node), both with the same settings,
 * `noeviction` among them (G5).
 */
import { join } from 'node:path';
import { binary } from './binaries.js';
import { serviceLogPath } from './data-dir.js';
import { ManagedService, type ManagedServiceOptions } from './managed-service.js';
import { type LaunchSpec, signal } from './processes.js';
import { redisAnswers, redisCommand } from './readiness.js';
import type { RedisReplicaHandle } from './types.js';

export interface RedisNode {
  /** The services' dir: the node's data lives in `<dir>/<role>`, its log in `<dir>/<role>.log`. */
  readonly dir: string;
  readonly role: 'redis' | 'redis-replica';
  /** `--appendonly yes --appendfsync always`, else nothing on disk. */
  readonly appendOnly: boolean;
  /** Follow the primary on this port (`--replicaof`). */
  readonly primaryPort?: number;
}

/** The primary, or with `primaryPort` a replica of it; both with the same settings. */
export function redisLaunch(port: number, node: RedisNode): LaunchSpec {
  const durability = node.appendOnly
    ? ['--appendonly', 'yes', '--appendfsync', 'always']
    : ['--appendonly', 'no'];
  const following =
    node.primaryPort === undefined ? [] : ['--replicaof', '127.0.0.1', String(node.primaryPort)];
  return {
    command: binary('redisServer'),
    args: [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      join(node.dir, node.role),
      '--save',
      '',
      ...durability,
      // G5: nothing is ever evicted.
      '--maxmemory-policy',
      'noeviction',
      // A replica's full sync goes over the socket, never through an RDB file on either side,
      // and starts at once instead of waiting 5 s for more replicas to join.
      '--repl-diskless-sync',
      'yes',
      '--repl-diskless-sync-delay',
      '0',
      '--repl-diskless-load',
      'swapdb',
      ...following,
      '--logfile',
      '',
      '--daemonize',
      'no',
    ],
    runAs: undefined,
    cwd: node.dir,
    logPath: serviceLogPath(node.dir, node.role),
    stopSignal: 'SIGTERM',
    answers: (pid) => redisAnswers(port, pid, node.primaryPort !== undefined),
  };
}

/** The replica: a Redis that follows the primary until promoted. */
export class RedisReplicaService extends ManagedService implements RedisReplicaHandle {
  #following = true;

  constructor(options: Omit<ManagedServiceOptions, 'launch'> & { launch: LaunchFor }) {
    super({ ...options, launch: (port) => options.launch(port, this.#following) });
  }

  get following(): boolean {
    return this.#following;
  }

  freeze(): void {
    this.#signal('SIGSTOP');
  }

  thaw(): void {
    this.#signal('SIGCONT');
  }

  #signal(name: 'SIGSTOP' | 'SIGCONT'): void {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`${this.name} is not running`);
    signal(pid, name);
  }

  async promote(): Promise<void> {
    const where = `${this.name} on 127.0.0.1:${this.port}`;
    const reply = await redisCommand(this.port, ['REPLICAOF', 'NO', 'ONE']);
    if (reply?.kind !== 'status' || reply.text !== 'OK') {
      throw new Error(`${where}: REPLICAOF NO ONE answered ${JSON.stringify(reply)}`);
    }
    this.#following = false;
    const info = await redisCommand(this.port, ['INFO', 'replication']);
    if (info?.kind !== 'bulk' || !/^role:master\r?$/m.test(info.text)) {
      throw new Error(`${where}: still no primary after REPLICAOF NO ONE: ${JSON.stringify(info)}`);
    }
  }
}

/** How to launch a Redis that follows its primary or not. */
export type LaunchFor = (port: number, following: boolean) => LaunchSpec;

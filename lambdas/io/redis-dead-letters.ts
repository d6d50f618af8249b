/**
 * The dead-letter store (G7): changesets the database refused, with its reason, by changeset id
 * in a hash and in original order in an index. Filed by `RedisBacklog.ack`; read, paged and
 * removed here.
 */
import type { Redis } from 'ioredis';
import { LuaScript } from './lua-script.js';
import { redisCall } from './redis.js';
import {
  type DeadLetter,
  decodeDeadLetter,
  decodeIndexMember,
  encodeIndexMember,
} from './redis-codec.js';
import type { BufferKeys } from './redis-keys.js';

const removeScript = new LuaScript('remove-dead-letters');

/** Dead letters removed per script call: no call holds Redis for long. */
const REMOVE_CHUNK = 1_000;

export class RedisDeadLetters {
  constructor(
    private readonly redis: Redis,
    private readonly keys: BufferKeys,
  ) {}

  /** Dead letters in original order, from the oldest. */
  async list(
    options: { limit?: number; changesetIds?: readonly string[] } = {},
  ): Promise<DeadLetter[]> {
    const values = await redisCall('read dead letters', async () => {
      let ids: string[];
      if (options.changesetIds) {
        ids = [...options.changesetIds];
      } else {
        const members = await this.redis.zrangebylex(
          this.keys.deadLetterIndex,
          '-',
          '+',
          'LIMIT',
          0,
          options.limit ?? 100,
        );
        ids = members.map((m) => decodeIndexMember(m).changesetId);
      }
      return ids.length === 0 ? [] : await this.redis.hmget(this.keys.deadLetters, ...ids);
    });
    const letters = values.flatMap((v) => (v === null ? [] : [decodeDeadLetter(v)]));
    return letters.sort((a, b) => encodeIndexMember(a).localeCompare(encodeIndexMember(b)));
  }

  /**
   * One page of dead letters in original order, after `cursor` (from the oldest without one):
   * at most `limit`, and no more than `maxBytes` of JSON (but always one, when any is left), so
   * that an answer stays within Lambda's 6 MB response limit whatever the letters' size. The
   * next page starts at `nextCursor`, null after the last.
   */
  async page(options: {
    readonly limit: number;
    readonly cursor?: string;
    readonly maxBytes: number;
  }): Promise<{ deadLetters: DeadLetter[]; nextCursor: string | null }> {
    const start =
      options.cursor === undefined
        ? '-'
        : `(${Buffer.from(options.cursor, 'base64url').toString('utf8')}`;
    const [members, values] = await redisCall('read dead letters', async () => {
      const members = await this.redis.zrangebylex(
        this.keys.deadLetterIndex,
        start,
        '+',
        'LIMIT',
        0,
        options.limit + 1,
      );
      const page = members.slice(0, options.limit);
      const values =
        page.length === 0
          ? []
          : await this.redis.hmget(
              this.keys.deadLetters,
              ...page.map((m) => decodeIndexMember(m).changesetId),
            );
      return [members, values] as const;
    });
    const deadLetters: DeadLetter[] = [];
    let bytes = 0;
    let last: string | undefined;
    for (const [i, value] of values.entries()) {
      const member = members[i] as string;
      if (value !== null) {
        bytes += Buffer.byteLength(value);
        if (deadLetters.length > 0 && bytes > options.maxBytes) break;
        deadLetters.push(decodeDeadLetter(value));
      }
      last = member;
    }
    const more = last !== undefined && last !== members.at(-1);
    return {
      deadLetters,
      nextCursor: more ? Buffer.from(last as string, 'utf8').toString('base64url') : null,
    };
  }

  /**
   * Remove dead letters (after replay, or on an operator's purge), from the hash and the index
   * atomically, in bounded script calls that also run at maxmemory. Returns how many existed.
   */
  async remove(letters: readonly DeadLetter[]): Promise<number> {
    let removed = 0;
    for (let at = 0; at < letters.length; at += REMOVE_CHUNK) {
      const chunk = letters.slice(at, at + REMOVE_CHUNK);
      removed += (await redisCall('remove dead letters', () =>
        removeScript.run(
          this.redis,
          [this.keys.deadLetters, this.keys.deadLetterIndex],
          chunk.flatMap((letter) => [letter.changesetId, encodeIndexMember(letter)]),
        ),
      )) as number;
    }
    return removed;
  }

  /** How many dead letters there are. */
  count(): Promise<number> {
    return redisCall('count dead letters', () => this.redis.zcard(this.keys.deadLetterIndex));
  }
}

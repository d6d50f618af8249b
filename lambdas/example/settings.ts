/**
 * The example pipeline's own settings, declared the way the engine's are (`../core/settings.ts`): a
 * pipeline of your own keeps its settings beside its steps, not in the engine's configuration.
 */
import { ConfigError } from '../core/errors.js';
import { type IntegerSetting, parseSetting } from '../core/settings.js';

export const PIPELINE_SETTINGS = {
  chunkSize: {
    kind: 'integer',
    env: 'CHUNK_SIZE',
    context: 'chunkSize',
    default: 1_000,
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    description: 'Characters per chunk in `process-document`.',
  },
  chunkOverlap: {
    kind: 'integer',
    env: 'CHUNK_OVERLAP',
    context: 'chunkOverlap',
    default: 100,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    description: 'Characters shared by neighbouring chunks; less than `CHUNK_SIZE`.',
  },
} as const satisfies Record<string, IntegerSetting>;

export interface PipelineConfig {
  readonly chunkSize: number;
  readonly chunkOverlap: number;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads and validates the example pipeline's settings.
 * @throws ConfigError naming the first malformed variable.
 */
export function loadPipelineConfig(env: Env = process.env): PipelineConfig {
  const read = (setting: IntegerSetting): number => {
    const raw = env[setting.env]?.trim();
    if (raw === undefined || raw === '') return setting.default;
    const parsed = parseSetting(setting, raw);
    if (!parsed.ok) throw new ConfigError(setting.env, parsed.problem);
    return parsed.value as number;
  };
  const chunkSize = read(PIPELINE_SETTINGS.chunkSize);
  const chunkOverlap = read(PIPELINE_SETTINGS.chunkOverlap);
  if (chunkOverlap >= chunkSize) {
    throw new ConfigError(
      'CHUNK_OVERLAP',
      `must be less than CHUNK_SIZE (${chunkSize}), got ${chunkOverlap}`,
    );
  }
  return Object.freeze({ chunkSize, chunkOverlap });
}

let cached: PipelineConfig | undefined;

/** The example pipeline's settings of this container, read on first use. */
export function getPipelineConfig(): PipelineConfig {
  cached ??= loadPipelineConfig();
  return cached;
}

/** Forgets the memoised settings (tests that change `process.env`). */
export function resetPipelineConfig(): void {
  cached = undefined;
}

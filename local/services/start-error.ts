/** The error a service that did not start throws, with the end of its log. */
import { existsSync, readFileSync } from 'node:fs';
import { mentionsAddressInUse } from './ports.js';

const LOG_TAIL_LINES = 30;

/** A service did not start or did not answer in time; the message ends with its log. */
export class ServiceStartError extends Error {
  override readonly name = 'ServiceStartError';
  readonly service: string;
  readonly logTail: string;
  /** The log says the port was taken: worth another try on another port. */
  readonly portInUse: boolean;

  constructor(service: string, reason: string, logPath: string, logTail: string) {
    super(`${service} ${reason}\n--- last lines of ${logPath} ---\n${logTail || '(empty)'}`);
    this.service = service;
    this.logTail = logTail;
    this.portInUse = mentionsAddressInUse(logTail);
  }
}

export function logTail(path: string): string {
  if (!existsSync(path)) return '';
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  return lines.slice(-LOG_TAIL_LINES).join('\n');
}

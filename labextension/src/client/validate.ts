/**
 * Runtime validation of every incoming frame against the protocol's JSON Schema, with the
 * validators ajv precompiled from it (src/generated/validators.js, `npm run generate`).
 * Dispatch on `message_type` first, so each frame runs exactly one message's validator.
 */
import * as validators from '../generated/validators.js';
import type { ServerMessage } from './machine';

export type Validated = { ok: true; message: ServerMessage } | { ok: false; error: string };

interface CompiledValidator {
  (data: unknown): boolean;
  errors?: { instancePath: string; message?: string }[] | null;
}

const byType = new Map<string, CompiledValidator>(
  Object.entries(validators as Record<string, CompiledValidator>),
);

/** The message types the validators know (the server's message types). */
export const KNOWN_TYPES: readonly string[] = [...byType.keys()];

export function validateFrame(data: unknown): Validated {
  let value: unknown;
  if (typeof data !== 'string') return { ok: false, error: 'binary frame' };
  try {
    value = JSON.parse(data);
  } catch {
    return { ok: false, error: 'not JSON' };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: 'not a JSON object' };
  }
  const type = (value as { message_type?: unknown }).message_type;
  const validate = typeof type === 'string' ? byType.get(type) : undefined;
  if (!validate) {
    return { ok: false, error: `unknown message_type ${JSON.stringify(type ?? null)}` };
  }
  if (!validate(value)) {
    const first = validate.errors?.[0];
    const where = first?.instancePath || '/';
    return { ok: false, error: `${String(type)}: ${where} ${first?.message ?? 'invalid'}` };
  }
  return { ok: true, message: value as ServerMessage };
}

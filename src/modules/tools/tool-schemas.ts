import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsImport from 'ajv-formats';
import type { JsonSchemaDocument } from '../../db/schema/tools.js';
import type { FieldError } from '../../lib/errors.js';
import { LruMap } from '../../lib/lru-map.js';

const addFormats = addFormatsImport.default;

/** Most compiled validators kept; the least recently used is dropped beyond it. */
const MAX_COMPILED = 1_000;

export type SchemaRole = 'input' | 'output' | 'approval_when';

export interface ToolSchemaSource {
  id: string;
  version: number;
}

/**
 * JSON Schema validation of tool arguments and results. One Ajv instance for every tool, strict about data (no type
 * coercion, no defaults filled in: what the approver sees is exactly what runs), lenient about unknown keywords
 * (tool authors bring schemas written for function calling). Validators are compiled once per tool version.
 */
export function createToolSchemaValidator() {
  // addUsedSchema:false: two tools (or two versions of one) may use the same `$id` without clashing.
  const ajv = new Ajv({ allErrors: true, strict: false, addUsedSchema: false, coerceTypes: false, useDefaults: false });
  addFormats(ajv);
  const compiled = new LruMap<string, ValidateFunction>(MAX_COMPILED);

  function compile(schema: JsonSchemaDocument): ValidateFunction {
    return ajv.compile(schema);
  }

  function cached(source: ToolSchemaSource, role: SchemaRole, schema: JsonSchemaDocument): ValidateFunction {
    const key = `${source.id}:${source.version}:${role}`;
    let validate = compiled.get(key);
    if (validate) return validate;
    validate = compile(schema);
    compiled.set(key, validate);
    return validate;
  }

  return {
    /** Whether a schema compiles; the message says why not (for 422 on registration). */
    check(schema: JsonSchemaDocument): string | null {
      try {
        compile(schema);
        return null;
      } catch (error) {
        return error instanceof Error ? error.message : 'is not a valid JSON Schema';
      }
    },

    /** Field errors (JSON pointers under `prefix`) when `data` does not match; an empty list when it does. */
    validate(source: ToolSchemaSource, role: SchemaRole, schema: JsonSchemaDocument, data: unknown, prefix = ''): FieldError[] {
      const validate = cached(source, role, schema);
      if (validate(data)) return [];
      return toFieldErrors(validate.errors ?? [], prefix);
    },

    matches(source: ToolSchemaSource, role: SchemaRole, schema: JsonSchemaDocument, data: unknown): boolean {
      return cached(source, role, schema)(data) === true;
    },

    get size(): number {
      return compiled.size;
    },
  };
}

export type ToolSchemaValidator = ReturnType<typeof createToolSchemaValidator>;

/** Ajv errors → JSON pointers to the offending member, in the style of the request validation errors. */
export function toFieldErrors(errors: ErrorObject[], prefix: string): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const error of errors) {
    let pointer = error.instancePath;
    let detail = error.message ?? 'is invalid';
    if (error.keyword === 'required' && typeof error.params.missingProperty === 'string') {
      pointer = `${pointer}/${escapePointer(error.params.missingProperty)}`;
      detail = 'is required';
    } else if (error.keyword === 'additionalProperties' && typeof error.params.additionalProperty === 'string') {
      pointer = `${pointer}/${escapePointer(error.params.additionalProperty)}`;
      detail = 'is not an allowed field';
    }
    const full = `${prefix}${pointer}` || '/';
    const key = `${full}\u0000${detail}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ pointer: full, detail });
  }
  return out;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** A short, single-line description of field errors, for the model (which gets no problem object). */
export function describeFieldErrors(errors: FieldError[]): string {
  return errors
    .slice(0, 10)
    .map((error) => `${error.pointer}: ${error.detail}`)
    .join('; ');
}

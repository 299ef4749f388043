/**
 * JSON Canonicalization Scheme (RFC 8785, "JCS"): one byte-exact JSON text per value, so a hash or signature over it
 * can be recomputed by anyone, in any language, from the same data.
 *
 * - Object members are sorted by their names as arrays of UTF-16 code units (JavaScript's default string order),
 *   at every depth; no whitespace is emitted.
 * - Numbers use the ECMAScript Number-to-String serialization (`-0` becomes `0`); NaN and ±Infinity are rejected.
 * - Strings use the ECMAScript JSON escaping (`\b \t \n \f \r \" \\`, other controls as lowercase `\u00xx`,
 *   everything else literal). Strings with lone surrogates are rejected, as RFC 8785 requires I-JSON input.
 *
 * The same input JSON.stringify accepts is accepted with the same meaning, so a value hashed before being stored
 * hashes the same after a JSON round trip: `toJSON()` is honoured (a Date becomes its ISO string), object members
 * whose value is `undefined` are omitted, `undefined` inside arrays becomes `null`. Where JSON.stringify would
 * silently lose data or produce non-JSON (BigInt, functions, symbols, Map, Set, cycles) this throws instead.
 */
export class CanonicalJsonError extends TypeError {
  constructor(
    /** What is wrong, without the location. */
    readonly reason: string,
    /** JSON pointer to the offending value, e.g. `/details/count`. */
    readonly pointer: string,
  ) {
    super(`${reason} at ${pointer === '' ? 'the root' : pointer} (canonical JSON, RFC 8785)`);
    this.name = 'CanonicalJsonError';
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

interface ToJson {
  toJSON(key: string): unknown;
}

function hasToJson(value: object): value is ToJson {
  return typeof (value as Partial<ToJson>).toJSON === 'function';
}

/** Where the serializer is; turned into a JSON pointer only when an error needs it. */
type Path = (string | number)[];

function pointerOf(path: Path): string {
  return path.map((key) => `/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

function serializeString(value: string, path: Path): string {
  const json = JSON.stringify(value);
  // JSON.stringify writes a lone surrogate as a \udxxx escape; only then is the exact (slower) check needed.
  if (json.includes('\\ud') && LONE_SURROGATE.test(value)) {
    throw new CanonicalJsonError('String contains a lone UTF-16 surrogate', pointerOf(path));
  }
  return json;
}

function serialize(value: unknown, key: string, path: Path, ancestors: object[]): string | undefined {
  if (value !== null && typeof value === 'object' && hasToJson(value)) value = value.toJSON(key);

  switch (typeof value) {
    case 'string':
      return serializeString(value, path);
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`Number ${String(value)} is not representable in JSON`, pointerOf(path));
      // JSON.stringify applies exactly the ECMAScript Number::toString that RFC 8785 mandates, -0 included.
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return undefined;
    case 'bigint':
      throw new CanonicalJsonError('BigInt is not representable in JSON (convert it to a number or string first)', pointerOf(path));
    case 'function':
    case 'symbol':
      throw new CanonicalJsonError(`A ${typeof value} is not representable in JSON`, pointerOf(path));
    case 'object':
      break;
  }
  if (value === null) return 'null';
  // typeof was 'object' here; narrow for the compiler.
  const object = value as object;
  if (object instanceof Map || object instanceof Set) {
    throw new CanonicalJsonError(`A ${object.constructor.name} is not representable in JSON (convert it to an object or array)`, pointerOf(path));
  }
  if (ancestors.includes(object)) throw new CanonicalJsonError('Circular reference', pointerOf(path));
  ancestors.push(object);
  let out: string;
  if (Array.isArray(object)) {
    out = '[';
    for (let i = 0; i < object.length; i++) {
      if (i > 0) out += ',';
      path.push(i);
      out += serialize(object[i], String(i), path, ancestors) ?? 'null';
      path.pop();
    }
    out += ']';
  } else {
    const record = object as Record<string, unknown>;
    // Default sort compares UTF-16 code units, which is the order RFC 8785 section 3.2.3 specifies.
    const keys = Object.keys(record).sort();
    out = '{';
    for (const name of keys) {
      path.push(name);
      const member = serialize(record[name], name, path, ancestors);
      if (member !== undefined) {
        if (out.length > 1) out += ',';
        out += serializeString(name, path);
        out += ':';
        out += member;
      }
      path.pop();
    }
    out += '}';
  }
  ancestors.pop();
  return out;
}

/** Serializes `value` as RFC 8785 canonical JSON. Throws CanonicalJsonError for values JSON cannot represent. */
export function canonicalJson(value: unknown): string {
  const out = serialize(value, '', [], []);
  if (out === undefined) throw new CanonicalJsonError(`A top-level ${typeof value} is not representable in JSON`, '');
  return out;
}

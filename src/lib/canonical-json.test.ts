import { describe, expect, it } from 'vitest';
import { CanonicalJsonError, canonicalJson } from './canonical-json.js';

function fromBits(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe('canonicalJson', () => {
  it('matches the RFC 8785 section 3.2.2 example (literals, numbers, string escaping)', () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        '"literals": [null, true, false]}',
    ) as unknown;
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('sorts member names by UTF-16 code units (RFC 8785 section 3.2.3 example)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('orders a supplementary-plane name before U+FB33 although its code point is larger', () => {
    // Code point order would put U+1F600 last; UTF-16 code unit order (0xD83D < 0xFB33) puts it first.
    expect(canonicalJson({ '\ufb33': 1, '\u{1f600}': 2 })).toBe('{"\u{1f600}":2,"\ufb33":1}');
  });

  it.each([
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ])('serializes IEEE 754 value 0x%s as %s (RFC 8785 appendix B)', (bits, expected) => {
    expect(canonicalJson(fromBits(bits))).toBe(expected);
  });

  it.each([
    ['NaN', fromBits('7fffffffffffffff')],
    ['Infinity', fromBits('7ff0000000000000')],
    ['-Infinity', -Infinity],
  ])('rejects %s', (_name, value) => {
    expect(() => canonicalJson({ a: [value] })).toThrow(CanonicalJsonError);
    expect(() => canonicalJson({ a: [value] })).toThrow(/not representable in JSON at \/a\/0/);
  });

  it('rejects BigInt, functions and symbols with the path of the offending value', () => {
    expect(() => canonicalJson({ n: 1n })).toThrow(/BigInt is not representable in JSON.* at \/n /);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/function is not representable in JSON at \/f/);
    expect(() => canonicalJson([Symbol('s')])).toThrow(/symbol is not representable in JSON at \/0/);
    expect(() => canonicalJson({ 'a/b': { '~': 2n } })).toThrow(/at \/a~1b\/~0/);
  });

  it('rejects Map, Set, cycles and lone surrogates instead of silently changing the data', () => {
    expect(() => canonicalJson({ m: new Map([['a', 1]]) })).toThrow(/Map is not representable/);
    expect(() => canonicalJson(new Set([1]))).toThrow(/Set is not representable/);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = { back: cyclic };
    expect(() => canonicalJson(cyclic)).toThrow(/Circular reference at \/self\/back/);
    expect(() => canonicalJson({ s: 'ok\ud800' })).toThrow(/lone UTF-16 surrogate at \/s/);
    expect(() => canonicalJson({ ['\udc00x']: 1 })).toThrow(/lone UTF-16 surrogate/);
    expect(() => canonicalJson(undefined)).toThrow(CanonicalJsonError);
  });

  it('allows a repeated (non-circular) reference', () => {
    const shared = { x: 1 };
    expect(canonicalJson({ b: shared, a: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });

  it('omits undefined members, turns undefined array items into null and honours toJSON like JSON.stringify', () => {
    const value = {
      z: undefined,
      when: new Date('2024-05-01T12:00:00.123Z'),
      list: [undefined, 1, { c: 2, b: undefined }],
      custom: { toJSON: () => ({ y: 1, x: 2 }) },
    };
    expect(canonicalJson(value)).toBe('{"custom":{"x":2,"y":1},"list":[null,1,{"c":2}],"when":"2024-05-01T12:00:00.123Z"}');
  });

  it('produces the same text before and after a JSON round trip, whatever the member order', () => {
    const a = { b: [1, 2.5, -0, 'x\u0001\u2028'], a: { d: null, c: true }, e: 'é' };
    const reordered = JSON.parse('{"e":"é","a":{"c":true,"d":null},"b":[1,2.5,0,"x\\u0001\u2028"]}') as unknown;
    expect(canonicalJson(JSON.parse(JSON.stringify(a)))).toBe(canonicalJson(a));
    expect(canonicalJson(reordered)).toBe(canonicalJson(a));
    expect(canonicalJson(a)).toBe('{"a":{"c":true,"d":null},"b":[1,2.5,0,"x\\u0001\u2028"],"e":"é"}');
  });

  it('emits no whitespace and escapes control characters with lowercase hex', () => {
    expect(canonicalJson({ ' k ': ['\u001f', '\t'] })).toBe('{" k ":["\\u001f","\\t"]}');
  });
});

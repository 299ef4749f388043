// Validators for the identifiers whose format carries a check digit or a reserved range.
// They take digits/characters only (separators already removed) and never throw.

const CODE_0 = 48;
const CODE_9 = 57;
const CODE_A = 65;
const CODE_Z = 90;

/** Luhn (mod 10) check over a string of ASCII digits. */
export function isLuhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - CODE_0;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

const MAESTRO_12 = /^(?:5018|5020|5038|5893|6304|6759|676[1-3]|0604)/;

function inRange(digits: string, len: number, lo: number, hi: number): boolean {
  const n = Number(digits.slice(0, len));
  return n >= lo && n <= hi;
}

/**
 * Whether a digit string has the issuer prefix and length of a payment card network
 * (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro, Mir).
 */
export function hasCardPrefix(digits: string): boolean {
  const len = digits.length;
  // 12-digit cards are Maestro only, and only on its own issuer ranges.
  if (len === 12) return MAESTRO_12.test(digits);
  if (len < 13 || len > 19) return false;
  switch (digits.charCodeAt(0) - CODE_0) {
    case 2:
      // Mastercard 2-series and Mir.
      return (len === 16 && inRange(digits, 4, 2221, 2720)) || (len >= 16 && inRange(digits, 4, 2200, 2204));
    case 3:
      if (inRange(digits, 2, 34, 34) || inRange(digits, 2, 37, 37)) return len === 15;
      // JCB: 16-19 digits, and 15 on older cards.
      if (inRange(digits, 4, 3528, 3589)) return len >= 15;
      if (inRange(digits, 3, 300, 305) || inRange(digits, 2, 36, 36) || inRange(digits, 2, 38, 39)) return len >= 14;
      return false;
    case 4:
      return len === 13 || len === 16 || len === 19;
    case 5:
      if (inRange(digits, 2, 51, 55)) return len === 16;
      // Maestro.
      return (inRange(digits, 2, 50, 50) || inRange(digits, 2, 56, 58)) && len >= 13;
    case 6:
      // Discover, UnionPay, Maestro: the whole 6-series is issued, lengths 13-19.
      return len >= 13;
    default:
      return false;
  }
}

/** IBAN total length per ISO 13616 country code (SWIFT IBAN registry). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28,
  CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18,
  FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HN: 28, HR: 21, HU: 28,
  IE: 22, IL: 23, IQ: 23, IR: 26, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20,
  LU: 20, LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28,
  NL: 18, NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24,
  SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26,
  UA: 29, VA: 22, VG: 24, XK: 20, YE: 30,
};

/** ISO 7064 mod 97-10 over an upper-case alphanumeric IBAN without separators, with the per-country length. */
export function isIbanValid(iban: string): boolean {
  const expected = IBAN_LENGTHS[iban.slice(0, 2)];
  if (expected === undefined || iban.length !== expected) return false;
  let rem = 0;
  // Rotate the first four characters to the end; letters count as two digits (A=10 … Z=35).
  for (let k = 0; k < iban.length; k++) {
    const c = iban.charCodeAt((k + 4) % iban.length);
    if (c >= CODE_0 && c <= CODE_9) {
      rem = (rem * 10 + (c - CODE_0)) % 97;
    } else if (c >= CODE_A && c <= CODE_Z) {
      rem = (rem * 100 + (c - CODE_A + 10)) % 97;
    } else {
      return false;
    }
  }
  return rem === 1;
}

/** US Social Security Number rules: area not 000, 666 or 900-999; group not 00; serial not 0000. */
export function isSsnValid(area: string, group: string, serial: string): boolean {
  if (area.length !== 3 || group.length !== 2 || serial.length !== 4) return false;
  const a = Number(area);
  return a !== 0 && a !== 666 && a < 900 && group !== '00' && serial !== '0000';
}

/** Shannon entropy in bits per character. */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0;
  const counts = new Map<number, number>();
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

import { detectEntities } from './entities.js';
import { findPhoneNumbersInText } from 'libphonenumber-js/max';
import { performance } from 'node:perf_hooks';
import { RedactionFailedError } from './policy.js';
import type { PiiEntity, PiiType } from './types.js';
import { hasCardPrefix, IBAN_LENGTHS, isIbanValid, isLuhnValid, isSsnValid, shannonEntropy } from './checksums.js';

export { PII_TYPES } from './types.js';
export type { PiiEntity, PiiType } from './types.js';

interface Candidate {
  type: PiiType;
  start: number;
  end: number;
  /** Higher wins when two candidates overlap (a checksum beats a pattern, a pattern beats a context guess). */
  priority: number;
}

type Out = Candidate[];

const PRIORITY = {
  secretKnown: 100,
  iban: 90,
  card: 85,
  ssn: 80,
  secretUrl: 75,
  email: 70,
  secretKeyValue: 65,
  ip: 60,
  dob: 50,
  phone: 40,
  phoneLibrary: 39,
  // Below every pattern with a checksum or a fixed shape: a name never hides a card or an address's phone number.
  entity: 10,
} as const;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

function isAsciiAlnum(c: number): boolean {
  return isDigit(c) || isAsciiLetter(c);
}

/** Latin letters with diacritics (Latin-1 Supplement and Latin Extended-A/B), minus × and ÷. */
function isLatinExtendedLetter(c: number): boolean {
  return c >= 0xc0 && c <= 0x24f && c !== 0xd7 && c !== 0xf7;
}

function isWordChar(c: number): boolean {
  return isAsciiAlnum(c) || c === 95;
}

/** Text from the start of the line (at most `max` code units) up to `pos`. */
function lineBefore(text: string, pos: number, max: number): string {
  const from = Math.max(0, pos - max);
  // Scan back at most `max` characters: lastIndexOf would walk a long line to its start every time.
  let i = pos - 1;
  while (i >= from && text.charCodeAt(i) !== 10) i--;
  return text.slice(i + 1, pos);
}

// ---------------------------------------------------------------------------------------------
// E-mail: scan for '@' and expand both ways; much cheaper than a regex that starts at every letter.

function isLocalChar(c: number): boolean {
  // a-z A-Z 0-9 . _ % + - '  ("=" is legal too, but far more often ends a "key=" before an address)
  return isAsciiAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45 || c === 39 || isLatinExtendedLetter(c);
}

// Message ids look like addresses but name a message, not a person.
const MESSAGE_ID_BEFORE = /\b(?:message-id|in-reply-to|references|content-id)\s*:.*<[^<>\s]*$/i;

function isDomainChar(c: number): boolean {
  return isAsciiAlnum(c) || c === 45 || isLatinExtendedLetter(c);
}

function detectEmails(text: string, out: Out): void {
  let at = text.indexOf('@');
  while (at !== -1) {
    let start = at;
    while (start > 0 && at - start < 64 && isLocalChar(text.charCodeAt(start - 1))) start--;
    // A quote or dot cannot open the local part ("'bob@x.com'", "...bob@x.com").
    while (start < at && (text.charCodeAt(start) === 46 || text.charCodeAt(start) === 39)) start++;
    if (start < at && text.charCodeAt(at - 1) !== 46) {
      let pos = at + 1;
      let labels = 0;
      let lastLabelStart = pos;
      let end = -1;
      for (;;) {
        const labelStart = pos;
        while (pos < text.length && isDomainChar(text.charCodeAt(pos))) pos++;
        if (pos === labelStart || text.charCodeAt(labelStart) === 45 || text.charCodeAt(pos - 1) === 45) break;
        labels++;
        lastLabelStart = labelStart;
        end = pos;
        if (text.charCodeAt(pos) === 46 && pos + 1 < text.length && isDomainChar(text.charCodeAt(pos + 1))) {
          pos++;
          continue;
        }
        break;
      }
      if (
        labels >= 2 &&
        end - lastLabelStart >= 2 &&
        isAlphaLabel(text, lastLabelStart, end) &&
        !isScpPath(text, end) &&
        !MESSAGE_ID_BEFORE.test(lineBefore(text, start, 200))
      ) {
        out.push({ type: 'EMAIL', start, end, priority: PRIORITY.email });
      }
    }
    at = text.indexOf('@', at + 1);
  }
}

/** "git@github.com:org/repo.git": user@host followed by ":path" is a remote, not a mailbox. */
function isScpPath(text: string, end: number): boolean {
  if (text.charCodeAt(end) !== 58) return false;
  const c = text.charCodeAt(end + 1);
  return isAsciiLetter(c) || c === 47 || c === 126 || c === 95;
}

function isAlphaLabel(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!isAsciiLetter(c) && !isLatinExtendedLetter(c)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Digit runs: cards and phones are found as maximal runs of digit groups, then the longest valid
// window of groups is chosen. A run never starts in the middle of a longer number.

interface Group {
  start: number;
  end: number;
}

/** Digit groups of text[from, to) separated by single spaces or dashes, as [start, end) pairs. */
function digitGroups(text: string, from: number, to: number): Group[] {
  const groups: Group[] = [];
  let i = from;
  while (i < to) {
    const s = i;
    while (i < to && isDigit(text.charCodeAt(i))) i++;
    groups.push({ start: s, end: i });
    i++; // the separator
  }
  return groups;
}

const CARD_RUN = /(?<![\w.$€£-]|\d[ -])\d+(?:[ -]\d+)*/g;
// Preceding text that makes a digit run the tail of an IBAN ("GB29 NWBK 6016 …").
const IBAN_HEAD_BEFORE = /(?:^|[^A-Za-z0-9])[A-Z]{2}\d{2}(?: [A-Z0-9]{4})+ $/;

function detectCards(text: string, out: Out): void {
  CARD_RUN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = CARD_RUN.exec(text)) !== null) {
    const runStart = m.index;
    const runEnd = runStart + m[0].length;
    if (runEnd - runStart < 12) continue;
    const after = text.charCodeAt(runEnd);
    // "4111…1111abc" or "4111…1111.50" is part of something else.
    const badTail = isAsciiLetter(after) || after === 95 || (after === 46 && isDigit(text.charCodeAt(runEnd + 1)));
    const groups = digitGroups(text, runStart, runEnd);
    if (groups.length === 1) {
      const g = groups[0];
      const len = g.end - g.start;
      if (!badTail && len >= 12 && len <= 19 && isCard(text.slice(g.start, g.end)) && !followsIbanHead(text, g.start)) {
        out.push({ type: 'CREDIT_CARD', start: g.start, end: g.end, priority: PRIORITY.card });
      }
      continue;
    }
    let s = 0;
    while (s < groups.length) {
      let found = -1;
      for (let e = Math.min(groups.length - 1, s + 5); e >= s; e--) {
        if (e === groups.length - 1 && badTail) continue;
        if (cardWindow(text, groups, s, e)) {
          found = e;
          break;
        }
      }
      if (found === -1) {
        s++;
        continue;
      }
      const start = groups[s].start;
      if (s > 0 || !followsIbanHead(text, start)) {
        out.push({ type: 'CREDIT_CARD', start, end: groups[found].end, priority: PRIORITY.card });
      }
      s = found + 1;
    }
  }
}

function cardWindow(text: string, groups: Group[], s: number, e: number): boolean {
  // A card printed in blocks is not a slice of a longer block run ("Ref 4111 1111 1111 1111 1111");
  // only a short neighbour such as the month of an expiry date may touch it.
  if (s !== e) {
    if (s > 0 && groups[s - 1].end - groups[s - 1].start > 2) return false;
    if (e < groups.length - 1 && groups[e + 1].end - groups[e + 1].start > 2) return false;
  }
  let digits = '';
  const sep = text.charCodeAt(groups[s].end);
  for (let k = s; k <= e; k++) {
    const g = groups[k];
    const len = g.end - g.start;
    // A card is either one unbroken number or printed in blocks of three to six digits; after blocks of four the
    // last block may be shorter ("5018 3812 0953 2", "3006 8459 0271 41").
    const shortTail = k === e && k - s >= 2 && len >= 1 && len < 4 && groups.slice(s, e).every((x) => x.end - x.start === 4);
    if (s !== e && (len < 3 || len > 6) && !shortTail) return false;
    if (k < e && text.charCodeAt(g.end) !== sep) return false;
    digits += text.slice(g.start, g.end);
  }
  return digits.length >= 12 && digits.length <= 19 && isCard(digits);
}

function isCard(digits: string): boolean {
  return hasCardPrefix(digits) && isLuhnValid(digits);
}

function followsIbanHead(text: string, start: number): boolean {
  if (start < 6 || text.charCodeAt(start - 1) !== 32 || !isAsciiAlnum(text.charCodeAt(start - 2))) return false;
  return IBAN_HEAD_BEFORE.test(text.slice(Math.max(0, start - 48), start));
}

// ---------------------------------------------------------------------------------------------
// IBAN: country code + check digits + BBAN, optionally in groups of four; the country fixes the length.

const IBAN_CANDIDATE = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}/g;

function detectIbans(text: string, out: Out): void {
  IBAN_CANDIDATE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = IBAN_CANDIDATE.exec(text)) !== null) {
    const start = m.index;
    const expected = IBAN_LENGTHS[m[0].slice(0, 2)];
    if (expected === undefined) {
      IBAN_CANDIDATE.lastIndex = start + 1;
      continue;
    }
    let compact = '';
    let pos = start;
    const limit = start + m[0].length;
    while (pos < limit && compact.length < expected) {
      const c = text.charCodeAt(pos);
      if (c !== 32) compact += text[pos];
      pos++;
    }
    if (compact.length === expected && !isAsciiAlnum(text.charCodeAt(pos)) && isIbanValid(compact)) {
      out.push({ type: 'IBAN', start, end: pos, priority: PRIORITY.iban });
      IBAN_CANDIDATE.lastIndex = pos;
    } else {
      // The greedy candidate may have swallowed the start of a real IBAN; resume right after the country code.
      IBAN_CANDIDATE.lastIndex = start + 2;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// US SSN: AAA-GG-SSSS anywhere; the space-separated and bare forms only when labelled as such.

const SSN_DASHED = /(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w]|-\d)/g;
const SSN_UNDASHED = /(?<![\w-]|\d )(\d{3})( ?)(\d{2})\2(\d{4})(?![\w]|[ -]\d)/g;
const SSN_CONTEXT = /(?:\bssns?\b|\bss#|social[ -]security|\bsoc\.? ?sec\b|\btaxpayer id)/i;

function detectSsns(text: string, out: Out): void {
  SSN_DASHED.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = SSN_DASHED.exec(text)) !== null) {
    if (isSsnValid(m[1], m[2], m[3])) {
      out.push({ type: 'SSN', start: m.index, end: m.index + 11, priority: PRIORITY.ssn });
    }
  }
  SSN_UNDASHED.lastIndex = 0;
  while ((m = SSN_UNDASHED.exec(text)) !== null) {
    if (isSsnValid(m[1], m[3], m[4]) && SSN_CONTEXT.test(lineBefore(text, m.index, 48))) {
      out.push({ type: 'SSN', start: m.index, end: m.index + m[0].length, priority: PRIORITY.ssn });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// IP addresses.

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_SRC = `${OCTET}(?:\\.${OCTET}){3}`;
const IPV4 = new RegExp(`(?<![\\w.]|\\d\\.)${IPV4_SRC}(?![\\w]|\\.\\d)`, 'g');
const VERSION_BEFORE = /(?:\b(?:version|ver\.?|release|build|firmware|fw|rev|revision|oid|section|§)\s*:?\s*|\bv\.?\s?)$/i;
// Single-digit dotted quads ("1.2.4.0") near release wording are version numbers.
const VERSION_NEAR = /\b(?:versions?|ver|releases?|build|upgrade[ds]?|downgrade[ds]?|update[ds]?|patch(?:es|ed)?|firmware)\b/i;
const SMALL_QUAD = /^\d\.\d\.\d\.\d$/;
const IPV4_EXACT = new RegExp(`^${IPV4_SRC}$`);
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

function isHexDigit(c: number): boolean {
  return isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function detectIps(text: string, out: Out): void {
  IPV4.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = IPV4.exec(text)) !== null) {
    // 0.0.0.0 is the wildcard ("listen on all interfaces"), not anyone's address.
    if (m[0] === '0.0.0.0') continue;
    // "10.0.0.1-beta", "1.2.3.4-rc1": a release label.
    if (text.charCodeAt(m.index + m[0].length) === 45 && isAsciiLetter(text.charCodeAt(m.index + m[0].length + 1))) continue;
    const before = lineBefore(text, m.index, 48);
    if (VERSION_BEFORE.test(before.slice(-24)) || (SMALL_QUAD.test(m[0]) && VERSION_NEAR.test(before))) continue;
    out.push({ type: 'IP_ADDRESS', start: m.index, end: m.index + m[0].length, priority: PRIORITY.ip });
  }
  // IPv6: expand around each colon (rare in prose) instead of trying a pattern at every hex letter.
  let colon = text.indexOf(':');
  while (colon !== -1) {
    let colons = 1;
    let start = colon;
    for (;;) {
      const c = text.charCodeAt(start - 1);
      if (!(isHexDigit(c) || c === 58)) break;
      if (c === 58) colons++;
      start--;
    }
    let end = colon + 1;
    for (;;) {
      const c = text.charCodeAt(end);
      if (!(isHexDigit(c) || c === 58 || c === 46)) break;
      if (c === 58) colons++;
      end++;
    }
    // A trailing dot ends the sentence.
    while (text.charCodeAt(end - 1) === 46) end--;
    const before = text.charCodeAt(start - 1);
    const after = text.charCodeAt(end);
    if (colons >= 2 && !isWordChar(before) && before !== 46 && !isWordChar(after) && isIpv6(text.slice(start, end))) {
      out.push({ type: 'IP_ADDRESS', start, end, priority: PRIORITY.ip });
    }
    colon = text.indexOf(':', Math.max(end, colon + 1));
  }
}

function isIpv6(s: string): boolean {
  if (s.length < 3 || !/\d/.test(s)) return false;
  let body = s;
  let extra = 0;
  if (s.indexOf('.') !== -1) {
    // An embedded IPv4 address may only end the address (::ffff:192.0.2.1).
    const lastColon = s.lastIndexOf(':');
    if (!IPV4_EXACT.test(s.slice(lastColon + 1))) return false;
    const head = s.slice(0, lastColon);
    body = head.endsWith(':') ? `${head}:` : head;
    extra = 2;
  }
  const dbl = body.indexOf('::');
  if (dbl === -1) {
    const groups = body.split(':');
    return groups.length + extra === 8 && groups.every((g) => HEX_GROUP.test(g));
  }
  if (body.indexOf('::', dbl + 1) !== -1 || body.indexOf(':::') !== -1) return false;
  const left = body.slice(0, dbl);
  const right = body.slice(dbl + 2);
  const lg = left === '' ? [] : left.split(':');
  const rg = right === '' ? [] : right.split(':');
  if (!lg.every((g) => HEX_GROUP.test(g)) || !rg.every((g) => HEX_GROUP.test(g))) return false;
  return lg.length + rg.length + extra <= 7;
}

// ---------------------------------------------------------------------------------------------
// Phone numbers: international (+CC / 00CC), North American (NXX NXX XXXX), trunk-prefixed national
// (0…) formats; bare digit strings and short local numbers only next to a phone label.

// Starts at "+" (which always begins a number) or at a digit that does not continue another number.
const PHONE_RUN = /(?:(?<![\w+])\+ ?|(?<![\w.+/@#$€£¥-]|\d[ .-]))\(?\d[\d ().-]*/g;
const PHONE_WORDS =
  /\b(?:phone|phones|tel|telephone|mobile|mob|cell|cellphone|fax|call|calls|called|calling|text|sms|whatsapp|signal|contact|reach|ring|dial|hotline|helpline|landline|switchboard|extension|ph)\b|\b[tmfhow]\.?(?=\s*:)/gi;
const ID_WORDS =
  /\b(?:order|orders|invoice|inv|ref|reference|ticket|case|account|acct|a\/c|policy|claim|tracking|serial|isbn|issn|id|ids|sku|part|batch|lot|po|transaction|txn|confirmation|booking|routing|member|mrn|license|licence|passport|tax|vat|ein|npi|nhs|version|build|page|pages|no|nr|total|amount|balance|qty|quantity|code|pin|otp|zip|postcode)\b/gi;

interface PhoneSeg {
  groups: Group[];
  /** Separator between group k-1 and group k at index k, parentheses removed (index 0 unused). */
  seps: string[];
  /** Whether group k is wrapped in parentheses, as in "(415) 555-0132" or "+44 (0)20". */
  wrapped: boolean[];
  plus: boolean;
}

type PhoneContext = 'phone' | 'id' | 'none';

function phoneContext(text: string, start: number): PhoneContext {
  const before = lineBefore(text, start, 40);
  let phoneAt = -1;
  let idAt = -1;
  PHONE_WORDS.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PHONE_WORDS.exec(before)) !== null) phoneAt = m.index + m[0].length;
  ID_WORDS.lastIndex = 0;
  while ((m = ID_WORDS.exec(before)) !== null) idAt = m.index + m[0].length;
  if (phoneAt === -1 && idAt === -1) return 'none';
  return phoneAt >= idAt ? 'phone' : 'id';
}

function isPhoneSeparator(s: string): boolean {
  return s === ' ' || s === '-' || s === '.' || s === ' - ';
}

/**
 * Splits a run into segments of digit groups joined by phone-like separators; any other
 * separator (". ", "--", an unbalanced parenthesis) ends one segment and starts the next.
 */
function splitPhoneRun(text: string, runStart: number, runEnd: number): PhoneSeg[] {
  const segs: PhoneSeg[] = [];
  let i = runStart;
  let plus = false;
  if (text.charCodeAt(i) === 43) {
    plus = true;
    i++;
    if (text.charCodeAt(i) === 32) i++;
  }
  let cur: PhoneSeg = { groups: [], seps: [''], wrapped: [], plus };
  let pending = '';
  // The last group was preceded by "(" and still waits for its ")".
  let open = false;
  const finish = (): void => {
    if (open) {
      // An opening parenthesis before the first group may just wrap the whole number.
      if (cur.groups.length > 1) {
        cur.groups.pop();
        cur.seps.pop();
        cur.wrapped.pop();
      }
    }
    if (cur.groups.length > 0) segs.push(cur);
  };
  while (i < runEnd) {
    if (!isDigit(text.charCodeAt(i))) {
      pending += text[i];
      i++;
      continue;
    }
    const gs = i;
    while (i < runEnd && isDigit(text.charCodeAt(i))) i++;
    const g = { start: gs, end: i };
    if (cur.groups.length === 0) {
      open = pending === '(';
      cur.groups.push(g);
      cur.wrapped.push(false);
    } else {
      const closes = pending.startsWith(')');
      const opens = pending.endsWith('(') && pending.length > (closes ? 1 : 0);
      const core = pending.slice(closes ? 1 : 0, opens ? pending.length - 1 : pending.length);
      const coreOk = core === '' ? closes || opens : isPhoneSeparator(core);
      const parensOk = closes === open || (open && !closes && cur.groups.length === 1);
      if (!coreOk || !parensOk) {
        finish();
        cur = { groups: [g], seps: [''], wrapped: [false], plus: false };
      } else {
        if (closes) cur.wrapped[cur.wrapped.length - 1] = true;
        cur.groups.push(g);
        cur.seps.push(core === '' ? ' ' : core);
        cur.wrapped.push(false);
      }
      open = opens;
    }
    pending = '';
  }
  finish();
  return segs;
}

function detectPhones(text: string, out: Out): void {
  PHONE_RUN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PHONE_RUN.exec(text)) !== null) {
    let runEnd = m.index + m[0].length;
    while (runEnd > m.index && !isDigit(text.charCodeAt(runEnd - 1))) runEnd--;
    if (runEnd - m.index < 7) continue;
    const tail = text.charCodeAt(runEnd);
    const badTail = isWordChar(tail);
    for (const seg of splitPhoneRun(text, m.index, runEnd)) {
      findPhonesInSegment(text, seg, badTail && seg.groups[seg.groups.length - 1].end === runEnd, out);
    }
  }
}

function findPhonesInSegment(text: string, seg: PhoneSeg, badTail: boolean, out: Out): void {
  const n = seg.groups.length;
  let s = 0;
  while (s < n) {
    let found = -1;
    const ctx: ContextCache = { value: undefined };
    for (let e = Math.min(n - 1, s + 6); e >= s; e--) {
      if (e === n - 1 && badTail) continue;
      if (e < n - 1 && seg.seps[e + 1] !== ' ') continue;
      if (isPhoneWindow(text, seg, s, e, ctx)) {
        found = e;
        break;
      }
    }
    // A number never starts inside a longer run of digit groups ("9557 0538 7761 2488"), only at
    // its beginning or right after a number found before it.
    if (found === -1) return;
    let start = seg.groups[s].start;
    if (s === 0 && !seg.plus && followsIbanHead(text, start)) return;
    if (seg.plus && s === 0) start = text.lastIndexOf('+', start);
    else if (seg.wrapped[s]) start--;
    out.push({ type: 'PHONE', start, end: seg.groups[found].end, priority: PRIORITY.phone });
    s = found + 1;
  }
}

/** The label context of a window start, computed at most once per start. */
interface ContextCache {
  value: PhoneContext | undefined;
}

function isPhoneWindow(text: string, seg: PhoneSeg, s: number, e: number, cache: ContextCache): boolean {
  const lens: number[] = [];
  const seps: string[] = [];
  let digits = '';
  for (let k = s; k <= e; k++) {
    const g = seg.groups[k];
    lens.push(g.end - g.start);
    digits += text.slice(g.start, g.end);
    if (k > s) seps.push(seg.seps[k]);
  }
  const n = digits.length;
  const plus = seg.plus && s === 0;
  const count = lens.length;

  if (plus) {
    if (n < 8 || n > 15 || count > 6) return false;
    if (count > 1 && lens[0] > 3) return false;
    // One-digit groups: an area code right after the country code (+33 1, +81 3) or the "(0)" trunk marker.
    for (let k = 1; k < count; k++) {
      if (lens[k] < 2 && k !== 1 && !(seg.wrapped[s + k] && text[seg.groups[s + k].start] === '0')) return false;
    }
    return true;
  }

  if (n < 7 || n > 15) return false;
  if (count >= 4 && lens.every((l) => l === 4)) return false;
  if (isDateShape(lens, seps)) return false;
  if (count === 3 && lens[0] === 3 && lens[1] === 2 && lens[2] === 4) return false;
  if (count === 4 && seps.every((x) => x === '.') && lens.every((l) => l <= 3)) return false;

  const ctx = (cache.value ??= phoneContext(text, seg.groups[s].start));
  if (ctx === 'id') return false;

  // International with the 00 prefix: 0044 20 7946 0958.
  if (digits.startsWith('00') && count >= 2 && (lens[0] === 4 || lens[0] === 2 || lens[0] === 5) && n >= 11 && n <= 17) {
    return lens.slice(1).every((l) => l >= 2);
  }
  if (n > 12) return false;

  // North American Numbering Plan: [1] NXX NXX XXXX.
  const nanpLens = lens[0] === 1 && digits[0] === '1' ? lens.slice(1) : lens;
  const nanpDigits = lens[0] === 1 && digits[0] === '1' ? digits.slice(1) : digits;
  if (nanpLens.length === 3 && nanpLens[0] === 3 && nanpLens[1] === 3 && nanpLens[2] === 4 && isNanp(nanpDigits)) return true;

  // Trunk-prefixed national numbers: 020 7946 0958, 030 12345678, 01 23 45 67 89, (02) 9876 5432.
  if (digits[0] === '0' && digits[1] !== '0' && count >= 2 && n >= 9 && lens[0] >= 2 && lens[0] <= 5) {
    // Pairs are the French style, always five of them; six pairs are more likely lottery numbers.
    const pairs = lens.every((l) => l === 2);
    if (lens.slice(1).every((l) => l >= 2 && l <= 8) && (!pairs || (count === 5 && e === seg.groups.length - 1))) return true;
  }

  if (ctx !== 'phone') return false;
  // Labelled: bare numbers and local formats.
  if (count === 1) return (n === 10 && isNanp(digits)) || (n === 11 && digits[0] === '1' && isNanp(digits.slice(1))) || (n >= 9 && digits[0] === '0');
  if (lens.some((l, k) => l < 2 && !(k === 0 && digits[0] === '1'))) return false;
  return true;
}

const EXTENSION_TAIL = /[\s,;]*(?:ext\.?|extension|x|#|poste|durchwahl|kl\.?|int\.?)\s*\d{1,6}$/i;
// libphonenumber is slow (hundreds of µs per message): it runs only where it adds to the patterns, on numbers
// written with "+" and on extensions.
const LIBRARY_WORTHY = /\+\s?\(?\d|\d[\s.]*(?:ext\.?|extension|x|#)\s*\d/i;

/**
 * International formats and extensions through libphonenumber's metadata ("+49 (0)30 901820", "+1 415-555-0132
 * ext. 12"): a number counts only if it is valid for its country, and, without "+", only when nothing around it
 * says it is an order or account number. The extension stays outside the span, as for the pattern detector.
 */
function detectLibraryPhones(text: string, out: Out): void {
  if (!LIBRARY_WORTHY.test(text)) return;
  for (const found of findPhoneNumbersInText(text, 'US')) {
    let end = found.endsAt;
    const start = found.startsAt;
    if (found.number.ext) {
      const raw = text.slice(start, end);
      const m = EXTENSION_TAIL.exec(raw);
      if (m) end = start + m.index;
    }
    while (end > start && !isDigit(text.charCodeAt(end - 1))) end--;
    const raw = text.slice(start, end);
    const before = text.charCodeAt(start - 1);
    // Part of a longer token ("ORD-2024-1187340", "x4155550132").
    if (isWordChar(before) || before === 45 || before === 47 || isWordChar(text.charCodeAt(end))) continue;
    if (raw[0] !== '+' && raw[0] !== '(') {
      const ctx = phoneContext(text, start);
      if (ctx === 'id') continue;
      if (ctx !== 'phone' && !/[\s.-]/.test(raw)) continue;
    }
    out.push({ type: 'PHONE', start, end, priority: PRIORITY.phoneLibrary });
  }
}

function isNanp(d: string): boolean {
  return d.length === 10 && d[0] >= '2' && d[3] >= '2';
}

function isDateShape(lens: number[], seps: string[]): boolean {
  if (lens.length !== 3 || seps[0] === ' ') return false;
  const [a, b, c] = lens;
  return (a === 4 && b <= 2 && c <= 2) || (a <= 2 && b <= 2 && (c === 4 || c === 2));
}

// ---------------------------------------------------------------------------------------------
// Dates of birth: a date is one only when a birth label precedes it closely (DOB:, born on …).

const MONTHS =
  'jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?';
const MONTH_INDEX: Readonly<Record<string, number>> = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12,
};
const DATE = new RegExp(
  '(?<![\\w/.-])(?:' +
    '(\\d{4})([-/.])(\\d{1,2})\\2(\\d{1,2})' +
    '|(\\d{1,2})([-/.])(\\d{1,2})\\6(\\d{4}|\\d{2})' +
    `|(\\d{1,2})(?:st|nd|rd|th|\\.)?(?:\\s+of)?[\\s-]+(${MONTHS})\\.?,?[\\s-]+(\\d{4})` +
    `|(${MONTHS})\\.?\\s+(\\d{1,2})(?:st|nd|rd|th)?,?\\s+(\\d{4})` +
    ')(?![\\w]|[-/.]\\d)',
  'gi',
);
const DOB_LABEL =
  /\b(?:d\.? ?o\.? ?b\b\.?|date[\s_]+of[\s_]+birth\b|birth[\s_]?date\b|birth\s?day\b|born\b|geburtsdatum\b|geb\.|fecha\s+de\s+nacimiento\b|date\s+de\s+naissance\b|n[éÉ]e?\s+le\b|nat[oa]\s+il\b|nacid[oa]\s+el\b|nascid[oa]\s+em\b|geboren\s+am\b)/gi;
// "birthday party on 2024-06-14" dates an event, not a birth.
const BIRTHDAY_EVENT = /^\s*(?:party|parties|cake|celebration|lunch|dinner|drinks|card|gift|present|wishes|event)\b/i;
// Between the label and the date: no digits, no sentence end, at most one line break.
const DOB_GAP = /^[^\d.;!?\n]{0,40}(?:\n[^\d.;!?\n]{0,20})?$/;

/** Returns whether any birth label occurs at all (a table header needs one too). */
function detectDatesOfBirth(text: string, out: Out): boolean {
  DOB_LABEL.lastIndex = 0;
  let labelled = false;
  let m: RegExpExecArray | null;
  while ((m = DOB_LABEL.exec(text)) !== null) {
    labelled = true;
    const labelEnd = m.index + m[0].length;
    if (BIRTHDAY_EVENT.test(text.slice(labelEnd, labelEnd + 16))) continue;
    // The date must start within 60 characters; 120 leaves room for the longest written-out date.
    const window = text.slice(labelEnd, labelEnd + 120);
    DATE.lastIndex = 0;
    const d = DATE.exec(window);
    if (d === null || d.index > 60 || !DOB_GAP.test(window.slice(0, d.index)) || !isPlausibleDate(d)) continue;
    const start = labelEnd + d.index;
    out.push({ type: 'DATE_OF_BIRTH', start, end: start + d[0].length, priority: PRIORITY.dob });
    DOB_LABEL.lastIndex = start + d[0].length;
  }
  return labelled;
}

// A table (CSV, TSV, Markdown) whose header names a birth-date column: that column's dates are births.
const DOB_HEADER_CELL =
  /(?:^|[,;\t|])[ \t"]*(?:dob|d\.o\.b\.?|date[ _]of[ _]birth|birth[ _]?date|birthday|date_of_birth|geburtsdatum)[ \t"]*(?=[,;\t|]|$)/gim;
const CELL_DELIMITERS = [',', ';', '\t', '|'];

function detectTableDatesOfBirth(text: string, out: Out): void {
  DOB_HEADER_CELL.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = DOB_HEADER_CELL.exec(text)) !== null) {
    const lineStart = text.lastIndexOf('\n', m.index) + 1;
    let lineEnd = text.indexOf('\n', m.index);
    if (lineEnd === -1) lineEnd = text.length;
    const header = text.slice(lineStart, lineEnd);
    const delim = CELL_DELIMITERS.reduce((best, d) => (countOf(header, d) > countOf(header, best) ? d : best));
    const width = countOf(header, delim);
    if (width === 0) continue;
    // The label cell starts after the delimiter the match may begin with, so count through it.
    const column = countOf(text.slice(lineStart, m.index + 1), delim);
    let pos = lineEnd + 1;
    while (pos < text.length) {
      let end = text.indexOf('\n', pos);
      if (end === -1) end = text.length;
      const row = text.slice(pos, end);
      if (row.trim() === '' || countOf(row, delim) !== width) break;
      const cell = cellSpan(row, delim, column);
      if (cell !== null) {
        const raw = row.slice(cell[0], cell[1]);
        const trimmedStart = cell[0] + (raw.length - raw.trimStart().length);
        const value = raw.trim().replace(/^"|"$/g, '');
        const offset = trimmedStart + (raw.trim().startsWith('"') ? 1 : 0);
        DATE.lastIndex = 0;
        const d = DATE.exec(value);
        if (d !== null && d.index === 0 && d[0].length === value.length && isPlausibleDate(d)) {
          out.push({ type: 'DATE_OF_BIRTH', start: pos + offset, end: pos + offset + value.length, priority: PRIORITY.dob });
        }
      }
      pos = end + 1;
    }
    DOB_HEADER_CELL.lastIndex = Math.max(DOB_HEADER_CELL.lastIndex, pos);
  }
}

function countOf(s: string, ch: string): number {
  let n = 0;
  for (let i = s.indexOf(ch); i !== -1; i = s.indexOf(ch, i + 1)) n++;
  return n;
}

/** [start, end) of the column-th cell of a delimited row. */
function cellSpan(row: string, delim: string, column: number): [number, number] | null {
  let start = 0;
  for (let k = 0; k < column; k++) {
    const i = row.indexOf(delim, start);
    if (i === -1) return null;
    start = i + 1;
  }
  const next = row.indexOf(delim, start);
  return [start, next === -1 ? row.length : next];
}

function isPlausibleDate(d: RegExpExecArray): boolean {
  if (d[1] !== undefined) return isYear(d[1]) && isMonthDay(Number(d[3]), Number(d[4]));
  if (d[5] !== undefined) {
    const a = Number(d[5]);
    const b = Number(d[7]);
    if (d[8].length === 4 && !isYear(d[8])) return false;
    return isMonthDay(a, b) || isMonthDay(b, a);
  }
  if (d[9] !== undefined) return isYear(d[11]) && isMonthDay(monthOf(d[10]), Number(d[9]));
  return isYear(d[14]) && isMonthDay(monthOf(d[12]), Number(d[13]));
}

function monthOf(name: string): number {
  return MONTH_INDEX[name.slice(0, 3).toLowerCase()] ?? 0;
}

function isYear(y: string): boolean {
  const n = Number(y);
  return n >= 1900 && n <= 2099;
}

function isMonthDay(month: number, day: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

// ---------------------------------------------------------------------------------------------
// Secrets: private keys, tokens with a recognisable issuer prefix, credentials in URLs, and
// values assigned to a password/secret/token/key name.

const KNOWN_TOKEN = new RegExp(
  '(?<![\\w-])(?:' +
    [
      'sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}',
      '(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}',
      'gh[pousr]_[A-Za-z0-9]{30,}',
      'github_pat_[A-Za-z0-9_]{22,}',
      'xox[bpars]-[A-Za-z0-9-]{10,}',
      '(?:AKIA|ASIA)[A-Z0-9]{16}',
      'AIza[A-Za-z0-9_-]{35}',
      'glpat-[A-Za-z0-9_-]{20,}',
      'npm_[A-Za-z0-9]{36}',
      'eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,}',
    ].join('|') +
    ')(?![\\w-])',
  'g',
);
const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END = /-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----/g;
// Lines of base64 after a BEGIN line whose END line is missing.
const PEM_BODY = /(?:\r?\n[A-Za-z0-9+/=]{1,100})*/y;
const URL_CREDENTIALS = /\b[a-z][a-z0-9+.-]{1,15}:\/\/[^\s:/@]{0,64}:([^\s@/]{1,128})@/gi;
// A name containing password/secret/token/key (DB_PASSWORD, SECRET_KEY_BASE, x-api-key), then "=", ":" or "is",
// then the value. Group 1: password-like names, group 2: token-like names, groups 3-5: the value.
const KEY_VALUE =
  /(?<![A-Za-z0-9])(?:(pass(?:word|wd|phrase)?|pwd)|(secret|client[_-]?secret|(?:access|refresh|auth|bearer|session|api)?[_-]?token|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|secret[_-]?(?:access[_-]?)?key|private[_-]?key|signing[_-]?key|webhook[_-]?secret))(?:[_-][A-Za-z0-9]+)*["']?[ \t]*(?::|=>?|\bis\b)[ \t]*(?:"([^"\n]{1,200})"|'([^'\n]{1,200})'|([^\s"'`,;<>(){}[\]]{1,200}))/gi;
// "with password toor1234": no separator, so only a value with both letters and digits counts.
const PASSWORD_SPACED = /(?<![A-Za-z0-9_-])(?:password|passwd|passphrase)[ \t]+([^\s"'`,;&<>(){}[\]]{6,64})/gi;
const BEARER = /\bBearer[ \t]+([A-Za-z0-9._~+/-]{16,}=*)/g;
const AUTHORIZATION = /\bAuthorization:[ \t]*(?:Basic|Digest|Token|Bearer)[ \t]+([A-Za-z0-9._~+/-]{8,}=*)/gi;
const PLACEHOLDER_VALUE =
  /^(?:\*+|x+|\.+|-+|_+|#+|\$\{?[A-Za-z_]\w*\}?|\{\{.*\}\}|%[A-Za-z_]\w*%|<[^>]*>|\[[^\]]*\]|(?:process\.env|os\.environ|env)\b.*|null|none|nil|undefined|true|false|redacted|hidden|empty|required|optional|string|yes|no|n\/a|same|unchanged|incorrect|invalid|wrong|expired|reset|changed|missing)$/i;

function charClasses(s: string): number {
  let lower = 0;
  let upper = 0;
  let digit = 0;
  let other = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 97 && c <= 122) lower = 1;
    else if (c >= 65 && c <= 90) upper = 1;
    else if (isDigit(c)) digit = 1;
    else other = 1;
  }
  return lower + upper + digit + other;
}

function looksLikeToken(v: string): boolean {
  return v.length >= 16 && charClasses(v) >= 2 && /\d/.test(v) && shannonEntropy(v) >= 3;
}

function looksLikePassword(v: string): boolean {
  if (v.length < 6 || PLACEHOLDER_VALUE.test(v)) return false;
  return charClasses(v) >= 2 || v.length >= 16;
}

// A cheap test that lets most messages skip the key/value patterns.
const MAY_HAVE_KEY_NAME = /pass|pwd|secret|token|key/i;

function detectSecrets(text: string, out: Out): void {
  let m: RegExpExecArray | null;
  if (text.indexOf('-----BEGIN') !== -1) {
    PEM_BEGIN.lastIndex = 0;
    // The next END line; searched again only once a BEGIN lies beyond it, so many BEGIN lines
    // without an END do not rescan the rest of the text each time.
    let endMatch: RegExpExecArray | null = null;
    let searched = false;
    while ((m = PEM_BEGIN.exec(text)) !== null) {
      const start = m.index;
      if (!searched || (endMatch !== null && endMatch.index < start)) {
        PEM_END.lastIndex = start + m[0].length;
        endMatch = PEM_END.exec(text);
        searched = true;
      }
      let end: number;
      if (endMatch !== null) {
        end = endMatch.index + endMatch[0].length;
      } else {
        // A truncated key: take the base64 body that follows.
        PEM_BODY.lastIndex = start + m[0].length;
        PEM_BODY.exec(text);
        end = PEM_BODY.lastIndex;
      }
      out.push({ type: 'SECRET', start, end, priority: PRIORITY.secretKnown });
      PEM_BEGIN.lastIndex = end;
    }
  }
  KNOWN_TOKEN.lastIndex = 0;
  while ((m = KNOWN_TOKEN.exec(text)) !== null) {
    const token = m[0];
    // "sk-" also starts ordinary hyphenated words; a key has digits and letters.
    if (token.startsWith('sk-') && !(/\d/.test(token) && /[A-Za-z]/.test(token.slice(3)) && shannonEntropy(token) >= 3.5)) continue;
    out.push({ type: 'SECRET', start: m.index, end: m.index + token.length, priority: PRIORITY.secretKnown });
  }
  if (text.indexOf('://') !== -1) {
    URL_CREDENTIALS.lastIndex = 0;
    while ((m = URL_CREDENTIALS.exec(text)) !== null) {
      const value = m[1];
      if (PLACEHOLDER_VALUE.test(value)) continue;
      const end = m.index + m[0].length - 1;
      out.push({ type: 'SECRET', start: end - value.length, end, priority: PRIORITY.secretUrl });
    }
  }
  const keyNames = MAY_HAVE_KEY_NAME.test(text);
  KEY_VALUE.lastIndex = keyNames ? 0 : text.length;
  while ((m = KEY_VALUE.exec(text)) !== null) {
    const quoted = m[3] ?? m[4];
    let value = quoted ?? m[5];
    const start = m.index + m[0].length - (quoted !== undefined ? 1 : 0) - value.length;
    if (quoted === undefined) {
      // The next parameter of a query string ("pw=x&remember=1"), or sentence punctuation.
      const param = value.search(/&[A-Za-z_][\w.-]*=/);
      if (param > 0) value = value.slice(0, param);
      value = value.replace(/[.!?:]+$/, '');
    }
    const ok = m[1] !== undefined ? looksLikePassword(value) : !PLACEHOLDER_VALUE.test(value) && looksLikeToken(value);
    if (ok) out.push({ type: 'SECRET', start, end: start + value.length, priority: PRIORITY.secretKeyValue });
  }
  PASSWORD_SPACED.lastIndex = keyNames ? 0 : text.length;
  while ((m = PASSWORD_SPACED.exec(text)) !== null) {
    const value = m[1].replace(/[.!?:]+$/, '');
    if (!/\d/.test(value) || !/[A-Za-z]/.test(value) || PLACEHOLDER_VALUE.test(value)) continue;
    const start = m.index + m[0].length - m[1].length;
    out.push({ type: 'SECRET', start, end: start + value.length, priority: PRIORITY.secretKeyValue });
  }
  if (text.indexOf('Bearer') !== -1) {
    BEARER.lastIndex = 0;
    while ((m = BEARER.exec(text)) !== null) {
      const value = m[1];
      if (!looksLikeToken(value)) continue;
      const end = m.index + m[0].length;
      out.push({ type: 'SECRET', start: end - value.length, end, priority: PRIORITY.secretKeyValue });
    }
  }
  AUTHORIZATION.lastIndex = text.indexOf('uthorization') !== -1 ? 0 : text.length;
  while ((m = AUTHORIZATION.exec(text)) !== null) {
    // A credential in an Authorization header is secret whatever its entropy.
    const value = m[1];
    if (PLACEHOLDER_VALUE.test(value)) continue;
    const end = m.index + m[0].length;
    out.push({ type: 'SECRET', start: end - value.length, end, priority: PRIORITY.secretKeyValue });
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Keeps the highest-priority candidates that do not overlap, sorted by start. Priorities are few, so
 * each level is merged into the kept list in one linear pass.
 */
function resolve(candidates: Candidate[]): Candidate[] {
  if (candidates.length <= 1) return candidates;
  candidates.sort((a, b) => b.priority - a.priority || a.start - b.start || b.end - b.start - (a.end - a.start));
  let kept: Candidate[] = [];
  let i = 0;
  while (i < candidates.length) {
    let j = i;
    while (j < candidates.length && candidates[j].priority === candidates[i].priority) j++;
    kept = mergeLevel(kept, candidates, i, j);
    i = j;
  }
  return kept;
}

/** Merges level[from, to) (sorted by start) into kept, dropping any candidate that overlaps. */
function mergeLevel(kept: Candidate[], level: Candidate[], from: number, to: number): Candidate[] {
  const out: Candidate[] = [];
  let k = 0;
  for (let x = from; x < to; x++) {
    const c = level[x];
    while (k < kept.length && kept[k].end <= c.start) out.push(kept[k++]);
    if (k < kept.length && kept[k].start < c.end) continue;
    if (out.length > 0 && out[out.length - 1].end > c.start) continue;
    out.push(c);
  }
  while (k < kept.length) out.push(kept[k++]);
  return out;
}

const HAS_DIGIT = /\d/;

/** Finds personal data and secrets in `text`: non-overlapping entities sorted by offset. */
export function detectPii(text: string, deadline = Infinity): PiiEntity[] {
  const candidates: Candidate[] = [];
  detectEmails(text, candidates);
  detectSecrets(text, candidates);
  // Every other type contains at least one digit.
  if (HAS_DIGIT.test(text)) {
    detectIbans(text, candidates);
    detectCards(text, candidates);
    detectSsns(text, candidates);
    detectIps(text, candidates);
    if (detectDatesOfBirth(text, candidates)) detectTableDatesOfBirth(text, candidates);
    detectPhones(text, candidates);
    detectLibraryPhones(text, candidates);
  }
  // The entity pass is the costly one: do not start it past the deadline (the caller refuses the text).
  if (performance.now() > deadline) throw new RedactionFailedError('timeout');
  for (const e of detectEntities(text)) candidates.push({ type: e.type, start: e.start, end: e.end, priority: PRIORITY.entity + e.strength });
  return resolve(candidates).map((c) => ({ type: c.type, start: c.start, end: c.end, value: text.slice(c.start, c.end) }));
}

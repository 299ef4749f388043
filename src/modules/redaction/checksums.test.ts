import { describe, expect, it } from 'vitest';
import { hasCardPrefix, IBAN_LENGTHS, isIbanValid, isLuhnValid, isSsnValid, shannonEntropy } from './checksums.js';

describe('isLuhnValid', () => {
  it('accepts published test card numbers', () => {
    for (const pan of ['4111111111111111', '5555555555554444', '378282246310005', '6011111111111117', '30569309025904', '3530111333300000', '4222222222222']) {
      expect(isLuhnValid(pan), pan).toBe(true);
    }
  });

  it('rejects every single-digit change of a valid number', () => {
    const pan = '4111111111111111';
    for (let i = 0; i < pan.length; i++) {
      for (let d = 0; d <= 9; d++) {
        if (String(d) === pan[i]) continue;
        const changed = pan.slice(0, i) + String(d) + pan.slice(i + 1);
        expect(isLuhnValid(changed), changed).toBe(false);
      }
    }
  });

  it('rejects empty and non-digit input', () => {
    expect(isLuhnValid('')).toBe(false);
    expect(isLuhnValid('4111 1111 1111 1111')).toBe(false);
  });
});

describe('hasCardPrefix', () => {
  it('knows the networks and their lengths', () => {
    expect(hasCardPrefix('4111111111111111')).toBe(true); // Visa 16
    expect(hasCardPrefix('4222222222222')).toBe(true); // Visa 13
    expect(hasCardPrefix('41111111111111')).toBe(false); // Visa never has 14 digits
    expect(hasCardPrefix('378282246310005')).toBe(true); // Amex 15
    expect(hasCardPrefix('3782822463100050')).toBe(false); // Amex never has 16
    expect(hasCardPrefix('2221000000000009')).toBe(true); // Mastercard 2-series
    expect(hasCardPrefix('2721000000000000')).toBe(false); // just past the 2-series
    expect(hasCardPrefix('5105105105105100')).toBe(true);
    expect(hasCardPrefix('30569309025904')).toBe(true); // Diners 14
    expect(hasCardPrefix('3530111333300000')).toBe(true); // JCB
    expect(hasCardPrefix('6200000000000005')).toBe(true); // UnionPay
    expect(hasCardPrefix('1234567812345670')).toBe(false);
    expect(hasCardPrefix('9111111111111111')).toBe(false);
  });
});

describe('isIbanValid', () => {
  const valid = [
    'DE89370400440532013000',
    'GB82WEST12345698765432',
    'FR1420041010050500013M02606',
    'NL91ABNA0417164300',
    'BE68539007547034',
    'CH9300762011623852957',
    'ES9121000418450200051332',
    'IT60X0542811101000000123456',
    'NO9386011117947',
    'MT84MALT011000012345MTLCAST001S',
    'SA0380000000608010167519',
    'BR1800360305000010009795493C1',
  ];

  it('accepts registry examples', () => {
    for (const iban of valid) expect(isIbanValid(iban), iban).toBe(true);
  });

  it('knows the length of every listed country and rejects other lengths', () => {
    expect(Object.keys(IBAN_LENGTHS).length).toBeGreaterThan(80);
    expect(isIbanValid('DE8937040044053201300')).toBe(false);
    expect(isIbanValid('DE893704004405320130000')).toBe(false);
  });

  it('rejects every single-character substitution (mod 97 catches them all)', () => {
    const iban = 'GB82WEST12345698765432';
    for (let i = 2; i < iban.length; i++) {
      for (const c of '0123456789') {
        if (c === iban[i]) continue;
        const changed = iban.slice(0, i) + c + iban.slice(i + 1);
        expect(isIbanValid(changed), changed).toBe(false);
      }
    }
  });

  it('rejects unknown countries, lower case and separators', () => {
    expect(isIbanValid('XX89370400440532013000')).toBe(false);
    expect(isIbanValid('de89370400440532013000')).toBe(false);
    expect(isIbanValid('DE89 3704 0044 0532 0130 00')).toBe(false);
  });
});

describe('isSsnValid', () => {
  it('accepts an assigned-looking number', () => {
    expect(isSsnValid('123', '45', '6789')).toBe(true);
    expect(isSsnValid('899', '99', '9999')).toBe(true);
  });

  it('rejects area 000, 666 and 900-999, group 00 and serial 0000', () => {
    expect(isSsnValid('000', '45', '6789')).toBe(false);
    expect(isSsnValid('666', '45', '6789')).toBe(false);
    expect(isSsnValid('900', '45', '6789')).toBe(false);
    expect(isSsnValid('999', '45', '6789')).toBe(false);
    expect(isSsnValid('123', '00', '6789')).toBe(false);
    expect(isSsnValid('123', '45', '0000')).toBe(false);
  });
});

describe('shannonEntropy', () => {
  it('is zero for a repeated character and log2(n) for n distinct ones', () => {
    expect(shannonEntropy('aaaaaaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBeCloseTo(2, 10);
    expect(shannonEntropy('')).toBe(0);
  });
});

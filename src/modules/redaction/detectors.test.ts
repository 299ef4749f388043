import { describe, expect, it } from 'vitest';
import { detectPii } from './detectors.js';
import type { PiiType } from './detectors.js';

/** [type, value] pairs found, in order. */
function found(text: string): Array<[PiiType, string]> {
  return detectPii(text).map((e) => [e.type, e.value]);
}

function valuesOf(type: PiiType, text: string): string[] {
  return detectPii(text)
    .filter((e) => e.type === type)
    .map((e) => e.value);
}

describe('EMAIL', () => {
  it('finds addresses with plus tags, subdomains and accents, without surrounding punctuation', () => {
    expect(found('Write to john.doe+invoices@mail.example.co.uk, or "maria@x.org".')).toEqual([
      ['EMAIL', 'john.doe+invoices@mail.example.co.uk'],
      ['EMAIL', 'maria@x.org'],
    ]);
    expect(valuesOf('EMAIL', 'Kontakt: zoë.müller@beispiel.example.')).toEqual(['zoë.müller@beispiel.example']);
    expect(valuesOf('EMAIL', "Unsubscribe O'Brien.Pat@mail.example now")).toEqual(["O'Brien.Pat@mail.example"]);
  });

  it('ignores hosts without a top-level domain, git remotes, handles and message ids', () => {
    expect(valuesOf('EMAIL', 'user@localhost and admin@ alone, @acme_support')).toEqual([]);
    expect(valuesOf('EMAIL', 'git clone git@github.com:acme/cdsa.git')).toEqual([]);
    expect(valuesOf('EMAIL', 'In-Reply-To: <CAF=3d+abc123@mail.gmail.com>')).toEqual([]);
    expect(valuesOf('EMAIL', 'From: <anna@example.org>')).toEqual(['anna@example.org']);
  });

  it('stops the local part at "=" so key=value logs keep the key', () => {
    expect(valuesOf('EMAIL', 'user=svc-backup@corp.example action=allow')).toEqual(['svc-backup@corp.example']);
  });
});

describe('CREDIT_CARD', () => {
  it('finds Luhn-valid numbers in the usual layouts', () => {
    expect(valuesOf('CREDIT_CARD', 'Visa 4111 1111 1111 1111, MC 5555-5555-5555-4444, Amex 378282246310005.')).toEqual([
      '4111 1111 1111 1111',
      '5555-5555-5555-4444',
      '378282246310005',
    ]);
    expect(valuesOf('CREDIT_CARD', 'Amex 3782 822463 10005 and Diners 3056 930902 5904')).toEqual([
      '3782 822463 10005',
      '3056 930902 5904',
    ]);
  });

  it('keeps the card when an expiry or CSV fields follow', () => {
    expect(valuesOf('CREDIT_CARD', 'card 4111 1111 1111 1111 12/27')).toEqual(['4111 1111 1111 1111']);
    expect(valuesOf('CREDIT_CARD', '2024-03-01;5105105105105100;EUR;89.90')).toEqual(['5105105105105100']);
    expect(valuesOf('CREDIT_CARD', 'A. Lopez,1975-01-30,4111111111111111,2024')).toEqual(['4111111111111111']);
  });

  it('rejects Luhn failures, numbers without an issuer prefix, and longer numbers', () => {
    expect(found('declined: 4111 1111 1111 1112')).toEqual([]);
    expect(found('loyalty 7012 3456 7890 1234 and 1002 3434 5555 6667')).toEqual([]);
    expect(found('overflow 4111111111111111111111 (22 digits)')).toEqual([]);
    expect(found('Ref 4111 1111 1111 1111 1111 is a batch')).toEqual([]);
  });

  it('rejects card-shaped parts of tokens, decimals and masked numbers', () => {
    expect(found('tok_4111111111111111 is safe')).toEqual([]);
    expect(found('total 4111111111111111.50')).toEqual([]);
    expect(found('**** **** **** 4242 or 4111 11** **** 1111')).toEqual([]);
  });

  it('does not report a Luhn-failing card as a phone number', () => {
    expect(found('Card: 4532 0151 1283 0367')).toEqual([]);
  });
});

describe('IBAN', () => {
  it('finds spaced and compact IBANs, with the length fixed by the country', () => {
    expect(valuesOf('IBAN', 'IBAN DE89 3704 0044 0532 0130 00 (Commerzbank) and GB82WEST12345698765432.')).toEqual([
      'DE89 3704 0044 0532 0130 00',
      'GB82WEST12345698765432',
    ]);
    expect(valuesOf('IBAN', 'Pay to NO93 8601 1117 947 TODAY')).toEqual(['NO93 8601 1117 947']);
    expect(valuesOf('IBAN', '/FR1420041010050500013M02606\n1/ROSSI')).toEqual(['FR1420041010050500013M02606']);
  });

  it('rejects bad check digits, wrong lengths and unknown countries', () => {
    expect(found('IBAN DE89 3704 0044 0532 0130 01')).toEqual([]);
    expect(found('IBAN DE89 3704 0044 0532 0130 0')).toEqual([]);
    expect(found('IBAN DE89370400440532013000X')).toEqual([]);
    expect(found('XY12 3456 7890 1234 5678 90')).toEqual([]);
  });

  it('does not read the digits of an invalid IBAN as a card or a phone', () => {
    expect(found('GB29 NWBK 6016 1331 9268 18 and NL24 RABO 0428 3422 64')).toEqual([]);
  });
});

describe('SSN', () => {
  it('finds dashed SSNs anywhere', () => {
    expect(valuesOf('SSN', 'SSN 123-45-6789; spouse 219-09-9998.')).toEqual(['123-45-6789', '219-09-9998']);
  });

  it('rejects area 000, 666 and 9xx, group 00 and serial 0000', () => {
    expect(found('000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000')).toEqual([]);
  });

  it('finds spaced and bare SSNs only next to a label', () => {
    expect(valuesOf('SSN', 'SSN: 123 45 6789')).toEqual(['123 45 6789']);
    expect(valuesOf('SSN', 'social security number 123456789')).toEqual(['123456789']);
    expect(found('routing 123456789')).toEqual([]);
    expect(found('page 123 45 6789')).toEqual([]);
  });

  it('rejects SSN shapes inside longer identifiers', () => {
    expect(found('claim 123-45-6789A and 2024-123-45-6789 and 123-45-6789-1')).toEqual([]);
  });
});

describe('IP_ADDRESS', () => {
  it('finds IPv4 addresses with ports, CIDR suffixes and in logs', () => {
    expect(valuesOf('IP_ADDRESS', 'from 203.0.113.77 port 52144; allow 10.0.12.4/32 to 10.0.40.10:5432')).toEqual([
      '203.0.113.77',
      '10.0.12.4',
      '10.0.40.10',
    ]);
  });

  it('rejects octets over 255, versions, OIDs and the wildcard address', () => {
    expect(found('256.300.1.1 and 999.999.999.999')).toEqual([]);
    expect(found('version 1.2.3.4, v10.0.0.1, upgrade to 1.2.4.0, 10.0.0.1-beta')).toEqual([]);
    expect(found('OID 1.3.6.1.4.1.2021.10.1.3.1')).toEqual([]);
    expect(found('listen on 0.0.0.0:8080')).toEqual([]);
  });

  it('finds IPv6 addresses in full, compressed and IPv4-mapped forms', () => {
    expect(
      valuesOf('IP_ADDRESS', 'dns 2606:4700:4700::1111, lo ::1, mapped ::ffff:192.0.2.128, full 2001:0db8:0000:0000:0000:ff00:0042:8329.'),
    ).toEqual(['2606:4700:4700::1111', '::1', '::ffff:192.0.2.128', '2001:0db8:0000:0000:0000:ff00:0042:8329']);
    expect(valuesOf('IP_ADDRESS', 'http://[fe80::1ff:fe23:4567:890a]:8080/')).toEqual(['fe80::1ff:fe23:4567:890a']);
  });

  it('rejects times, MAC addresses and C++ scopes', () => {
    expect(found('at 10:30:00, MAC 00:1A:2B:3C:4D:5E, std::vector and Foo::Bar, ratio 3:2:1')).toEqual([]);
  });
});

describe('PHONE', () => {
  it('finds international numbers', () => {
    expect(
      valuesOf('PHONE', 'Call +1 (415) 555-0132, +44 (0)20 7946 0958, +81 3-1234-5678, +49 30 12345678 or 0044 20 7946 0958.'),
    ).toEqual(['+1 (415) 555-0132', '+44 (0)20 7946 0958', '+81 3-1234-5678', '+49 30 12345678', '0044 20 7946 0958']);
  });

  it('finds North American and trunk-prefixed national numbers', () => {
    expect(valuesOf('PHONE', '(212) 555-0148, 415.555.0199, 1-800-555-0155, 020 7946 0958, 01 23 45 67 89')).toEqual([
      '(212) 555-0148',
      '415.555.0199',
      '1-800-555-0155',
      '020 7946 0958',
      '01 23 45 67 89',
    ]);
  });

  it('needs a phone label for bare digit strings and short local numbers', () => {
    expect(found('customer 4155550132 and 555-0172')).toEqual([]);
    expect(valuesOf('PHONE', 'Tel: 4155550132, call 555-0172')).toEqual(['4155550132', '555-0172']);
  });

  it('rejects dates, SSN shapes, card shapes, ISBNs and labelled identifiers', () => {
    expect(found('2024-03-14, 14/03/2024, 03.14.2024, 666-12-3456')).toEqual([]);
    expect(found('4532 0151 1283 0367 and 1234 5678 9012 3456')).toEqual([]);
    expect(found('ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2')).toEqual([]);
    expect(found('order 415-555-0132, NHS number 943 476 5919')).toEqual([]);
    expect(found('lottery 04 11 23 35 42 49')).toEqual([]);
  });
});

describe('DATE_OF_BIRTH', () => {
  it('finds dates in common formats after a birth label', () => {
    const text =
      'DOB: 03/14/1985. Born on March 3, 1976. Date of birth: 1979-11-02. D.O.B. 12.08.1990. Birthday: Sept. 30, 1984. ' +
      'born 7th April 1962. Geburtsdatum: 17.05.1971. nata il 12/05/1950. birth date 10-Oct-1977.';
    expect(valuesOf('DATE_OF_BIRTH', text)).toEqual([
      '03/14/1985',
      'March 3, 1976',
      '1979-11-02',
      '12.08.1990',
      'Sept. 30, 1984',
      '7th April 1962',
      '17.05.1971',
      '12/05/1950',
      '10-Oct-1977',
    ]);
  });

  it('takes only the first date after the label', () => {
    expect(valuesOf('DATE_OF_BIRTH', 'DOB 1985-03-14, admitted 2024-01-05')).toEqual(['1985-03-14']);
  });

  it('ignores dates without a birth label, birthday events and implausible dates', () => {
    expect(found('Appointment 03/14/2024; invoice date 2024-01-15.')).toEqual([]);
    expect(found('Birthday party planned on 2024-06-14.')).toEqual([]);
    expect(found('The patient, born in 1948, reports dizziness since 12 March 2024.')).toEqual([]);
    expect(found('DOB: 13/13/1985')).toEqual([]);
  });

  it('finds the dates of a table column labelled as birth date', () => {
    const csv = 'name,dob,ssn\nA. Lopez,1975-01-30,x\nB. Chen,1983-09-12,y\n\nnext,2024-01-01,z';
    expect(valuesOf('DATE_OF_BIRTH', csv)).toEqual(['1975-01-30', '1983-09-12']);
  });
});

describe('SECRET', () => {
  it('finds tokens with known prefixes', () => {
    const tokens = [
      'sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z',
      'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
      'pk_live_51HxYzAbCdEf1234567890',
      'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
      'gho_16C7e42F292c6912E7710c838347Ae178B4a',
      'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz',
      'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
      'AKIAIOSFODNN7EXAMPLE',
      'AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW',
      'glpat-xR4kB9mZ2pQ7wL1nV5tY',
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
    ];
    for (const t of tokens) expect(valuesOf('SECRET', `key: ${t} (rotate)`), t).toEqual([t]);
  });

  it('finds private key blocks, complete or truncated', () => {
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----';
    expect(valuesOf('SECRET', `here:\n${pem}\nthanks`)).toEqual([pem]);
    expect(valuesOf('SECRET', 'pasted -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASC\n\nand then')).toEqual([
      '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASC',
    ]);
  });

  it('finds values assigned to password, secret, token and key names', () => {
    expect(valuesOf('SECRET', 'DB_PASSWORD=hunter22 and "password": "Summer2024!"')).toEqual(['hunter22', 'Summer2024!']);
    expect(valuesOf('SECRET', 'api_key="a8F3k2L9m0Q7w1E5r6T4y" SECRET_KEY_BASE=9f2Kx7Lm3Qp8Rt5Vw1Yz4Bc6Nd0Gh2J')).toEqual([
      'a8F3k2L9m0Q7w1E5r6T4y',
      '9f2Kx7Lm3Qp8Rt5Vw1Yz4Bc6Nd0Gh2J',
    ]);
    expect(valuesOf('SECRET', 'login?user=jdoe&password=s3cr3t-P4ss&remember=1')).toEqual(['s3cr3t-P4ss']);
    expect(valuesOf('SECRET', 'My password is Tr0ub4dor&3, reset it.')).toEqual(['Tr0ub4dor&3']);
    expect(valuesOf('SECRET', 'ssh in with password toor1234')).toEqual(['toor1234']);
  });

  it('finds credentials in URLs and Authorization headers, preferring them to an e-mail reading', () => {
    expect(found('postgres://app:Xk29!vLq7p@db.example.com:5432/app')).toEqual([['SECRET', 'Xk29!vLq7p']]);
    expect(found('redis://:r3d1sPassw0rd@cache.internal:6379')).toEqual([['SECRET', 'r3d1sPassw0rd']]);
    expect(valuesOf('SECRET', 'Authorization: Basic YWRtaW46czNjcjN0')).toEqual(['YWRtaW46czNjcjN0']);
  });

  it('ignores placeholders, low-entropy values and ordinary words', () => {
    expect(found('password: ******** and password=${DB_PASSWORD} and api_key=<your-key-here>')).toEqual([]);
    expect(found('The password is incorrect. The token expired. token: expired')).toEqual([]);
    expect(found('max_tokens: 1024, prompt_tokens=1532')).toEqual([]);
    expect(found('the sk-learn pipeline and the risk-assessment task-force')).toEqual([]);
  });
});

describe('offsets', () => {
  it('are UTF-16 code units, so emoji before an entity count twice', () => {
    const text = '😀😀 mail a@b.co 🙈 card 4111111111111111 🌐 ip 203.0.113.9';
    const entities = detectPii(text);
    expect(entities.map((e) => [e.type, e.start, e.end])).toEqual([
      ['EMAIL', 10, 16],
      ['CREDIT_CARD', 25, 41],
      ['IP_ADDRESS', 48, 59],
    ]);
    for (const e of entities) expect(text.slice(e.start, e.end)).toBe(e.value);
  });

  it('are sorted and never overlap', () => {
    const text =
      'postgres://u:p4ssW0rd1@h.example 4111 1111 1111 1111 DE89 3704 0044 0532 0130 00 +1 415 555 0132 ' +
      'DOB: 1985-03-14 123-45-6789 a@b.example 10.0.0.1 ghp_abcdefghijklmnopqrstuvwxyz0123456789';
    const entities = detectPii(text);
    expect(entities.map((e) => e.type)).toEqual([
      'SECRET',
      'CREDIT_CARD',
      'IBAN',
      'PHONE',
      'DATE_OF_BIRTH',
      'SSN',
      'EMAIL',
      'IP_ADDRESS',
      'SECRET',
    ]);
    for (let i = 1; i < entities.length; i++) expect(entities[i].start).toBeGreaterThanOrEqual(entities[i - 1].end);
  });

  it('returns nothing for text without personal data', () => {
    expect(detectPii('')).toEqual([]);
    expect(detectPii('Please summarise the attached contract in three bullet points.')).toEqual([]);
  });
});

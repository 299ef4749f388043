import { describe, expect, it } from 'vitest';
import { detectPii } from './detectors.js';
import { raisesDocumentLabel, labelRaisingTypes, parsePiiTypeList, DEFAULT_REDACTION_POLICY, RedactionFailedError } from './policy.js';
import { detectWithinBudget, PlaceholderVault, redactText } from './redactor.js';

const found = (text: string): string[] => detectPii(text).map((e) => `${e.type}:${e.value}`);

describe('people, places and organisations', () => {
  it('takes evidence from titles, phrases, company suffixes and the gazetteer', () => {
    expect(found('Hi, my name is Šárka Ottová and I work for Acme Corporation in Berlin, Germany.')).toEqual([
      'PERSON:Šárka Ottová',
      'ORGANIZATION:Acme Corporation',
      'LOCATION:Berlin',
      'LOCATION:Germany',
    ]);
    // The title stays outside the name.
    expect(found('Dr. Patel will call back.')).toEqual(['PERSON:Patel']);
    expect(found('Our contact is Jane Smith from Kowalski Sp. z o.o.')).toEqual(['PERSON:Jane Smith', 'ORGANIZATION:Kowalski Sp. z o.o.']);
  });

  it('finds street addresses in several countries with what follows them on the line', () => {
    expect(found('Send it to 221B Baker Street, London NW1 6XE please.')).toEqual(['LOCATION:221B Baker Street, London NW1 6XE']);
    expect(found('Adresse: 12 rue de la Paix, 75002 Paris')).toEqual(['LOCATION:12 rue de la Paix, 75002 Paris']);
    expect(found('Wir wohnen in der Hauptstraße 12a, 10115 Berlin.')).toEqual(['LOCATION:Hauptstraße 12a, 10115 Berlin']);
    expect(found('Office: Calle Mayor 5, 28013 Madrid')).toContain('LOCATION:Calle Mayor 5, 28013 Madrid');
  });

  it('reads form labels, signatures and table headers', () => {
    expect(found('Name: Ingrid Halvorsen\nCompany: Fjordlys\nCity: Tromsø')).toEqual([
      'PERSON:Ingrid Halvorsen',
      'ORGANIZATION:Fjordlys',
      'LOCATION:Tromsø',
    ]);
    expect(found('Thanks for the quick fix.\n\nKind regards,\nMarie-Claire Dubois\nHead of Sales')).toEqual(['PERSON:Marie-Claire Dubois']);
    expect(found('name;city\nTeodor Wąsik;Gdańsk\nAino Virtanen;Tampere')).toEqual([
      'PERSON:Teodor Wąsik',
      'LOCATION:Gdańsk',
      'PERSON:Aino Virtanen',
      'LOCATION:Tampere',
    ]);
  });

  it('leaves capitalised common words, headings, products and codes alone', () => {
    for (const text of [
      'Thanks for the update. The Quarterly Report is attached; Action Items are at the end.',
      'Please Review The Release Notes Before Friday.',
      'Version 2.14.3 fixes the CSV export; ticket PROJ-4412 can be closed.',
      'The Practical Rubber Gloves (SKU ABX-1234-9Z) ship on 2025-03-14 with order ORD-20240117.',
      'We agreed to revisit the pricing model in Q3, after the pilot with 12 customers ends on 30 June.',
    ]) {
      expect(found(text), text).toEqual([]);
    }
  });

  it('reports UTF-16 offsets through redact_text', () => {
    const text = '👋 Hi, my name is Šárka Ottová.';
    const r = redactText(text);
    expect(r.redacted_text).toBe('👋 Hi, my name is [PERSON_1].');
    expect(r.entities).toEqual([{ type: 'PERSON', start: 18, end: 30 }]);
    expect(text.slice(18, 30)).toBe('Šárka Ottová');
  });
});

describe('placeholders for people', () => {
  it('give a lone surname the placeholder of the one person with that surname', () => {
    const vault = new PlaceholderVault();
    expect(vault.redact('Hi, my name is Šárka Ottová.').text).toBe('Hi, my name is [PERSON_1].');
    expect(vault.redact('Ms. Ottová called again.').text).toBe('Ms. [PERSON_1] called again.');
    expect(vault.restore('[PERSON_1]')).toBe('Šárka Ottová');
  });

  it('give an ambiguous surname a placeholder of its own', () => {
    const vault = new PlaceholderVault();
    vault.redact('My name is Jan Novák. My brother is Petr Novák.');
    expect(vault.redact('Mr. Novák called.').text).toBe('Mr. [PERSON_3] called.');
  });
});

describe('policy', () => {
  it('parses type lists, rejecting unknown names', () => {
    expect(parsePiiTypeList('person, email,PERSON')).toEqual(['EMAIL', 'PERSON']);
    expect(parsePiiTypeList('all')).toEqual(DEFAULT_REDACTION_POLICY.redactTypes);
    expect(parsePiiTypeList('none')).toEqual([]);
    expect(() => parsePiiTypeList('EMAIL,NAME')).toThrow(/unknown type\(s\) NAME/);
  });

  it('redacts only the types it names', () => {
    const policy = { ...DEFAULT_REDACTION_POLICY, redactTypes: ['EMAIL' as const] };
    expect(new PlaceholderVault().redact('I am Jane Smith, jane@corp.example.', policy).text).toBe('I am Jane Smith, [EMAIL_1].');
  });

  it("says which detected types raise a document's label", () => {
    const policy = { ...DEFAULT_REDACTION_POLICY, labelTypes: ['CREDIT_CARD' as const, 'SSN' as const] };
    const entities = detectPii('Jane Smith paid with 4111 1111 1111 1111.');
    expect(labelRaisingTypes(entities, policy)).toEqual(['CREDIT_CARD']);
    expect(raisesDocumentLabel(['PERSON'], policy)).toBe(false);
    expect(raisesDocumentLabel(['PERSON'])).toBe(true);
  });

  it('fails closed: an overrun is an error, never the text unredacted', () => {
    const text = 'Name: Jane Smith, 1 Main Street, Springfield. '.repeat(400);
    expect(() => detectWithinBudget(text, 0)).toThrow(RedactionFailedError);
    expect(() => new PlaceholderVault().redact(text, { ...DEFAULT_REDACTION_POLICY, timeBudgetMs: 0 })).toThrow(/time budget/);
  });
});

export const PII_TYPES = [
  'EMAIL',
  'PHONE',
  'SSN',
  'CREDIT_CARD',
  'IBAN',
  'IP_ADDRESS',
  'DATE_OF_BIRTH',
  'SECRET',
  'PERSON',
  'LOCATION',
  'ORGANIZATION',
] as const;

export type PiiType = (typeof PII_TYPES)[number];

/** A detected span; offsets are UTF-16 code units (JavaScript string indices), `end` exclusive. */
export interface PiiEntity {
  type: PiiType;
  start: number;
  end: number;
  value: string;
}

import { higherLabel, type Label } from '../../lib/labels.js';
import { detectPii, type PiiType } from '../redaction/index.js';

/**
 * What the redactor's findings mean for a document's label — the one place that maps detected types to labels.
 * Types missing here (e-mail addresses, phone numbers, IPs, dates) are counted but do not raise the label on their own.
 */
const LABEL_FLOOR: Partial<Record<PiiType | 'PERSON' | 'LOCATION' | 'ORGANIZATION', Label>> = {
  CREDIT_CARD: 'CONFIDENTIAL',
  IBAN: 'CONFIDENTIAL',
  SSN: 'CONFIDENTIAL',
  PERSON: 'CONFIDENTIAL',
  LOCATION: 'CONFIDENTIAL',
  SECRET: 'RESTRICTED',
};

export interface Classification {
  /** Counts per detected type; never the values. */
  detected: Record<string, number>;
  /** The label the findings call for at least, or null when they call for none. */
  floor: Label | null;
}

/** Classifies extracted text with the redactor's detectors (checksum-validated cards and IBANs, SSNs, secrets). */
export function classifyText(text: string): Classification {
  const detected: Record<string, number> = {};
  let floor: Label | null = null;
  for (const entity of detectPii(text)) {
    detected[entity.type] = (detected[entity.type] ?? 0) + 1;
    const required = LABEL_FLOOR[entity.type as keyof typeof LABEL_FLOOR];
    if (required) floor = floor ? higherLabel(floor, required) : required;
  }
  return { detected, floor };
}

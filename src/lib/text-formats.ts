import { Type, type StringOptions } from '@sinclair/typebox';

/**
 * What text may contain, as Ajv formats registered once on the request validator (src/app.ts), so a schema says
 * `SingleLineText()` or `MultiLineText()` and the rule lives here. NUL is refused in every request anyway
 * (src/plugins/request-hygiene.ts): no column can hold it.
 *
 * - single-line (names, titles, labels): no control characters at all — C0, DEL, C1, and the Unicode line and
 *   paragraph separators — so a name cannot break a log line, a CSV row or a terminal.
 * - multi-line (descriptions, reasons, messages): tab, line feed and carriage return are text; other controls are not.
 */
export const TEXT_FORMATS = {
  // eslint-disable-next-line no-control-regex -- control characters are what the format refuses
  'single-line': /^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$/,
  // eslint-disable-next-line no-control-regex -- control characters are what the format refuses
  'multi-line': /^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$/,
} as const;

export const SingleLineText = (options: StringOptions = {}) => Type.String({ ...options, format: 'single-line' });
export const MultiLineText = (options: StringOptions = {}) => Type.String({ ...options, format: 'multi-line' });

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultClearance, LABELS } from '../../src/lib/labels.js';
import { PERMISSION_MIN_ROLE, ROLES } from '../../src/modules/auth/permissions.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The rows of the first Markdown table at or after `marker`, as arrays of cells (backticks removed). */
function tableAfter(marker: string): string[][] {
  const start = readme.indexOf(marker);
  expect(start, `README has "${marker}"`).toBeGreaterThanOrEqual(0);
  const lines = readme.slice(start).split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim().replace(/`/g, '')),
    );
  }
  return rows.slice(2); // header and separator
}

describe('README: roles, permissions and clearance', () => {
  it('lists every permission with the lowest role of the permission map, and nothing else', () => {
    const rows = tableAfter('## Roles, permissions and clearance');
    expect(Object.fromEntries(rows.map((row) => [row[0], row[1]]))).toEqual(PERMISSION_MIN_ROLE);
    expect(rows).toHaveLength(Object.keys(PERMISSION_MIN_ROLE).length);
  });

  it('gives each role its default clearance as the code does, with the labels in order', () => {
    const rows = tableAfter('| role | default clearance |');
    expect(Object.fromEntries(rows.map((row) => [row[0], row[1]]))).toEqual(Object.fromEntries(ROLES.map((role) => [role, defaultClearance(role)])));
    expect(readme).toContain(`Labels are ordered \`${LABELS.join(' < ')}\``);
    expect(readme).toContain(`Roles are ordered \`${ROLES.join(' < ')}\``);
  });
});

import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'console/dist/**', 'test-results/**', 'node_modules/**', 'data/**', 'coverage/**', 'src/db/migrations/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  {
    // One wiring idiom: modules reach later-registered neighbours through neighbour() (src/modules/wiring.ts).
    files: ['src/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.property.name=/^(getDecorator|hasDecorator)$/]",
          message: 'Reach another module with neighbour(app, name) from src/modules/wiring.ts.',
        },
        {
          selector: "CallExpression[callee.object.name='Reflect'][callee.property.name='get']",
          message: 'Reach another module with neighbour(app, name) from src/modules/wiring.ts.',
        },
      ],
    },
  },
  {
    // The console runs in the browser.
    files: ['console/src/**'],
    languageOptions: {
      globals: { window: 'readonly', document: 'readonly', location: 'readonly', history: 'readonly', performance: 'readonly', fetch: 'readonly' },
    },
  },
  {
    files: ['bench/**', 'src/cli/**', 'bin/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
);

// typescript-eslint's recommended rules on the TypeScript (src/, test/); the JavaScript of bench/,
// demo/, examples/ and the test fixtures gets ESLint's recommended set.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', '**/node_modules/**', 'test/matrix/**', '**/*.d.ts'] },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // The patch layer hands the app's exact arguments on with `fn.apply(this, arguments)`: no
    // rest array per call on the hot path, and the listeners see the same argument count.
    files: ['src/patch/**/*.ts', 'src/tracer/guard.ts'],
    rules: { 'prefer-rest-params': 'off' },
  },
  {
    // Tests read untyped agent payloads and load fixtures the way the app under test would.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-require-imports': 'off' },
  },
);

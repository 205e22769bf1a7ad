// typescript-eslint's recommended rules on the TypeScript (src/, test/); the JavaScript of bench/,
// demo/, examples/ and the test fixtures gets ESLint's recommended set.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', '**/node_modules/**', 'test/matrix/**', '**/*.d.ts'] },
  // A disable comment that suppresses nothing (a rule since fixed, or one this config does not have) fails.
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
  {
    // No "type": "module" in package.json: a .js file is CommonJS, except these fixtures, which
    // are ESM on purpose (one under "type": "module", one Node detects by its syntax).
    files: ['**/*.js'],
    ignores: ['test/fixtures/start-forms/esm/**', 'test/fixtures/start-forms/typeless/**'],
    languageOptions: { sourceType: 'commonjs' },
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
    // socket.io's patches (src/protocols/) are patch layer too.
    files: ['src/patch/**/*.ts', 'src/tracer/guard.ts', 'src/protocols/**/*.ts'],
    rules: { 'prefer-rest-params': 'off' },
  },
  {
    // Loaded with require() when needed, never at the top: the optional backends (a missing
    // elastic-apm-node, newrelic or OpenTelemetry SDK must not stop the app, and an app that does
    // not use one never loads it), each backend's adapter module after its agent is found,
    // import-in-the-middle's hooks, socket.io's internal files next to the copy the app loaded,
    // and package.json.
    files: ['src/adapters/**/*.ts', 'src/esm-hook.ts', 'src/patch/modules.ts', 'src/protocols/**/*.ts', 'src/version.ts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Tests read untyped agent payloads and load fixtures the way the app under test would.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-require-imports': 'off' },
  },
);

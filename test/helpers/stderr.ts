/** Capture what ws-apm writes to stderr during a test (its warnings and fault reports). */
export interface CapturedStderr {
  text(): string;
  restore(): void;
}

export function captureStderr(): CapturedStderr {
  let out = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  return {
    text: () => out,
    restore: () => {
      process.stderr.write = write;
    },
  };
}

/**
 * ws-apm's start-up report (src/startup.ts, level info): the summary line, naming the backend
 * it reports to, and one line per ws copy instrumented after it.
 */
const STARTUP_SUMMARY = /^\[ws-apm\] info: ws-apm \S+ (?:reporting to (\S+?)[ ;]|is not instrumenting ws:)/;
const STARTUP_LATER_COPY = /^\[ws-apm\] info: instrumented ws \S+ \((?:CommonJS|ESM)\)$/;

export function isStartupLine(line: string): boolean {
  return STARTUP_SUMMARY.test(line) || STARTUP_LATER_COPY.test(line);
}

/** The backend the start-up summary in `stderr` names ('none' when it says nothing is instrumented). */
export function startupBackend(stderr: string): string | undefined {
  for (const line of stderr.split('\n')) {
    const m = STARTUP_SUMMARY.exec(line);
    if (m) return m[1] ?? 'none';
  }
  return undefined;
}

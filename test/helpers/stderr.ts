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

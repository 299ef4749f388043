/**
 * The AI SDK prints provider warnings (unsupported settings, unknown model limits) with console.warn unless a
 * process-wide handler is installed. Call this once at start-up to route them to the application's logger instead,
 * or pass `false` to drop them.
 */
export function routeSdkWarnings(log: ((message: string) => void) | false): void {
  globalThis.AI_SDK_LOG_WARNINGS =
    log === false
      ? false
      : ({ warnings, provider, model }) => {
          for (const warning of warnings) log(`${provider}/${model}: ${describeWarning(warning)}`);
        };
}

function describeWarning(warning: object): string {
  if ('message' in warning && typeof warning.message === 'string') return warning.message;
  if ('details' in warning && typeof warning.details === 'string') return warning.details;
  return JSON.stringify(warning);
}

import type { SharedV3Warning } from '@ai-sdk/provider';
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

/**
 * Provider warnings from a model call made without the SDK's `streamText` (which would report them itself): they go
 * to the handler `routeSdkWarnings` installed, or to console.warn when none is, and nowhere when it is `false`.
 */
export function reportSdkWarnings(warnings: SharedV3Warning[], provider: string, model: string): void {
  if (warnings.length === 0) return;
  const handler = globalThis.AI_SDK_LOG_WARNINGS;
  if (handler === false) return;
  if (handler) handler({ warnings, provider, model });
  else for (const warning of warnings) console.warn(`AI SDK warning (${provider}/${model}):`, warning);
}

function describeWarning(warning: object): string {
  if ('message' in warning && typeof warning.message === 'string') return warning.message;
  if ('details' in warning && typeof warning.details === 'string') return warning.details;
  return JSON.stringify(warning);
}

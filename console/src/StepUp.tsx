import { useCallback, useState } from 'react';
import { ApiError, stepUp } from './api';

export const STEP_UP_REQUIRED = 'urn:cdsa:problem:step-up-required';

export function isStepUpRequired(error: unknown): boolean {
  return error instanceof ApiError && error.problem.type === STEP_UP_REQUIRED;
}

/** The one input for a second-factor code: sign-in, enrolment, turning MFA off and every step-up use it. */
export function CodeField({ value, onChange, label = 'Authenticator code', autoFocus }: { value: string; onChange: (value: string) => void; label?: string; autoFocus?: boolean }) {
  return (
    <label>
      {label}
      <input name="code" value={value} onChange={(e) => onChange(e.target.value)} autoComplete="one-time-code" inputMode="numeric" autoFocus={autoFocus} required />
    </label>
  );
}

export interface StepUp {
  /** The server asked for a fresh second factor: the code field is showing. */
  needed: boolean;
  code: string;
  setCode: (code: string) => void;
  /**
   * Runs a sensitive action: first the step-up with the typed code (when one was asked for), then the action. A
   * step-up-required answer shows the code field and becomes a readable error; the caller runs the action again.
   */
  guard: <T>(action: () => Promise<T>) => Promise<T>;
}

export class StepUpNeeded extends Error {}

/** Sensitive actions (deciding approvals, revealing secrets, role and clearance changes) share this flow. */
export function useStepUp(what: string): StepUp {
  const [needed, setNeeded] = useState(false);
  const [code, setCode] = useState('');
  const guard = useCallback(
    async <T,>(action: () => Promise<T>): Promise<T> => {
      if (needed && code.trim()) {
        await stepUp(code);
        setCode('');
        setNeeded(false);
      }
      try {
        return await action();
      } catch (error) {
        if (!isStepUpRequired(error)) throw error;
        setNeeded(true);
        throw new StepUpNeeded(`${what} needs a fresh code from your authenticator app.`);
      }
    },
    [needed, code, what],
  );
  return { needed, code, setCode, guard };
}

/** The code field of a step-up, shown only once the server asked for one. */
export function StepUpField({ stepUp: s }: { stepUp: StepUp }) {
  if (!s.needed) return null;
  return (
    <div className="stepup" data-testid="step-up">
      <CodeField value={s.code} onChange={s.setCode} autoFocus />
    </div>
  );
}

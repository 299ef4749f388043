/** The components that keep credentials of their own; their name prefixes (`llm.`) are closed to users' secrets. */
export const SYSTEM_CREDENTIAL_COMPONENTS = ['llm'] as const;
export type SystemCredentialComponent = (typeof SYSTEM_CREDENTIAL_COMPONENTS)[number];

/** Whether a secret name is in a system component's namespace (and so not a name for a user's secret). */
export function isSystemCredentialName(name: string): boolean {
  return SYSTEM_CREDENTIAL_COMPONENTS.some((component) => name.startsWith(`${component}.`));
}

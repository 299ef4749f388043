/**
 * The name a model calls a tool by. Providers allow only letters, digits, "_" and "-" in function names (OpenAI and
 * Anthropic refuse a dot), while an MCP tool is named `<server>.<tool>`: the dot becomes `__` for the model.
 */
export function modelToolName(name: string): string {
  return name.replaceAll('.', '__');
}

// What a node's env file (KEY=value lines a shell sources, unquoted) can carry: one rule for the
// renderer that writes it and for the config values that end up in it.

/** Punctuation a value may hold besides ASCII letters and digits ("-" last: it closes the class). */
const ENV_FILE_PUNCTUATION = "._/:@+,-";

/** A value a shell reads back as itself without quoting: no space, quote, $, ?, =, %, newline. */
export const ENV_FILE_VALUE = new RegExp(`^[A-Za-z0-9${ENV_FILE_PUNCTUATION}]*$`);

/** The same characters in words, for error messages and the README. */
export const ENV_FILE_CHARACTERS = `ASCII letters, digits and ${[...ENV_FILE_PUNCTUATION].join(" ")}`;

/** The first character of `value` an env file cannot carry, if any. */
export function firstUnsafeEnvCharacter(value: string): string | undefined {
  return [...value].find((c) => !ENV_FILE_VALUE.test(c));
}

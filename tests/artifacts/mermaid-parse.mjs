// Parses the Mermaid diagram on stdin with mermaid's own parser: prints its type, or the parse error and exits 1.
import DOMPurify from "dompurify";

// Node has no DOM, so DOMPurify is inert here; mermaid's parser only needs its hooks to exist.
DOMPurify.addHook ??= () => {};
DOMPurify.sanitize ??= (s) => s;
const { default: mermaid } = await import("mermaid");

let text = "";
for await (const chunk of process.stdin) text += chunk;
try {
  const { diagramType } = await mermaid.parse(text);
  process.stdout.write(`${diagramType}\n`);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

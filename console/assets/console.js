// Draws the saga diagram with the Mermaid that ships inside the console (no CDN). A separate
// file, not an inline script: the console's Content-Security-Policy runs scripts of its own
// origin only.
mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
mermaid
  .run({ querySelector: ".mermaid" })
  .then(() => { document.body.dataset.diagram = "rendered"; })
  .catch((error) => { document.body.dataset.diagram = "failed: " + error; });

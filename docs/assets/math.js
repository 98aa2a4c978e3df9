// Render the math that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \] in
// elements of class "arithmatex", with the vendored KaTeX (no network access needed).
function renderMath(root) {
  root.querySelectorAll(".arithmatex").forEach((el) => {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => renderMath(body)); // mkdocs-material instant loading
} else {
  document.addEventListener("DOMContentLoaded", () => renderMath(document.body));
}

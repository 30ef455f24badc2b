// The one place the dashboard imports lit-html from (vendored, see scripts/vendor.json).
export { html, svg, render, nothing } from "../vendor/lit-html/lit-html.js";
export { live } from "../vendor/lit-html/directives/live.js";
export { ref, createRef } from "../vendor/lit-html/directives/ref.js";
export { repeat } from "../vendor/lit-html/directives/repeat.js";
export { classMap } from "../vendor/lit-html/directives/class-map.js";

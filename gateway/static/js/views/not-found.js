import { html } from "../lit.js";

export class NotFoundView {
  constructor() {
    this.title = "Page not found";
    this.section = null;
  }

  connected() {}

  disconnected() {}

  render() {
    return html`<div class="card empty">
      <h1>Page not found</h1>
      <p>There is no page at this address. It may have moved, or the server it showed was deleted.</p>
      <a class="button primary" href="/servers">Go to your servers</a>
    </div>`;
  }
}

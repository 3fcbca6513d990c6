// The web app's entry: the page's config (written by the node), the wallet, and the view the page is for.
import { App } from "./app.js";

const config = JSON.parse(document.getElementById("webi-config").textContent);
new App(config, document).start();

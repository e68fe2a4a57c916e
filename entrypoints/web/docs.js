// Starts Swagger UI on /docs with this server's own OpenAPI document. A file of its own,
// not an inline script: the page's Content-Security-Policy allows scripts from this origin only.
"use strict";
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // "Try it out" sends requests to this server (connect-src 'self'); no validator badge,
  // which would fetch from another site.
  validatorUrl: null,
});

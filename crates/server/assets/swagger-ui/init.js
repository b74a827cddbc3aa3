// Starts Swagger UI on the Corvid docs page. Kept in its own file (no inline script) so the
// page works under a strict Content-Security-Policy.
window.addEventListener('DOMContentLoaded', function () {
  window.ui = SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#docs',
    deepLinking: true,
    validatorUrl: null,
  });
});

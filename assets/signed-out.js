// A page whose session has ended (a revoked wall token, an account disabled or signed out elsewhere) gets 401
// for its refreshes. Rather than keep a picture that no longer moves, it reloads: the server then shows the
// sign-in page in its place.
(function () {
  var fetchFirst = window.fetch;
  var reloading = false;
  window.fetch = function () {
    return fetchFirst.apply(this, arguments).then(function (response) {
      if (response.status === 401 && !reloading && String(response.url).indexOf('/_dash-update-component') !== -1) {
        reloading = true;
        window.location.reload();
      }
      return response;
    });
  };
})();

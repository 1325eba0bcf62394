/* citydeck in the browser: the wall's screen size, and maps that fit their area to the panel they are in. */
(function () {
  "use strict";

  // The wall's screen size, sent with each refresh so figures set their type for a room (see values.type_px).
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    citydeck: {
      screen: function (_n, was) {
        var now = { h: window.innerHeight, w: window.innerWidth };
        if (was && was.h === now.h && was.w === now.w) {
          return window.dash_clientside.no_update;
        }
        return now;
      },
      // The moment a page shows, kept in the address bar as playback moves it on, so a link copied at any
      // time opens that moment; replaced, not pushed, so Back still leads to the page before. The links to
      // the other pages follow it too: a page opened during playback goes on from the moment shown.
      moment: function (shown, navHrefs, cardHrefs) {
        var no = window.dash_clientside.no_update;
        if (!shown || typeof shown !== "object") {
          return [no, no, no];
        }
        var withMoment = function (search) {
          var query = new URLSearchParams(search);
          if (shown.at) {
            query.set("at", shown.at);
            if (shown.play) {
              query.set("play", String(shown.play));
            } else {
              query.delete("play");
            }
          } else {
            query.delete("at");
            query.delete("play");
          }
          var text = query.toString().replace(/%3A/g, ":");
          return text ? "?" + text : "";
        };
        var wanted = window.location.pathname + withMoment(window.location.search) + window.location.hash;
        if (wanted !== window.location.pathname + window.location.search + window.location.hash) {
          window.history.replaceState(window.history.state, "", wanted);
        }
        var links = function (hrefs) {
          var moved = (hrefs || []).map(function (href) {
            var cut = href.indexOf("?");
            return cut < 0 ? href + withMoment("") : href.slice(0, cut) + withMoment(href.slice(cut));
          });
          return moved.join(" ") === (hrefs || []).join(" ") ? no : moved;
        };
        var title = shown.at ? "The address bar holds this moment: a link copied now opens it." : "";
        return [title, links(navHrefs), links(cardHrefs)];
      },
    },
  });

  // A map's layout carries the box it shows (layout.meta.fit: [min lon, min lat, max lon, max lat]). Its
  // centre and zoom are fitted here to the map's real size on screen, when it is first drawn and whenever
  // its size or box changes; a zoom or pan by the operator is left alone until then.
  function zoomFor(box, width, height) {
    var lonSpan = Math.max(box[2] - box[0], 1e-4);
    var mid = ((box[1] + box[3]) / 2) * (Math.PI / 180);
    var latSpan = Math.max(box[3] - box[1], 1e-4) / Math.max(Math.cos(mid), 0.1);
    var zoom = Math.min(Math.log2((width * 360) / (512 * lonSpan)), Math.log2((height * 360) / (512 * latSpan)));
    return { center: { lon: (box[0] + box[2]) / 2, lat: (box[1] + box[3]) / 2 }, zoom: Math.max(zoom - 0.1, 1) };
  }

  // The fitted view is written into the graph's own figure (not only drawn), so the refreshes that patch
  // its traces keep it.
  function fit(gd) {
    var layout = gd.layout;
    var box = layout && layout.meta && layout.meta.fit;
    var graph = gd.closest(".dash-graph");
    var api = window.dash_component_api, clientside = window.dash_clientside;
    if (!box || !layout.map || !graph || !graph.id || !api || !clientside || !clientside.set_props) {
      return;
    }
    if (gd.offsetWidth < 10 || gd.offsetHeight < 10) {
      return;
    }
    var key = box.join(",") + "@" + gd.offsetWidth + "x" + gd.offsetHeight + "#" + layout.uirevision;
    var id = graph.id.charAt(0) === "{" ? JSON.parse(graph.id) : graph.id;
    var component = api.getLayout(id);
    var figure = component && (component.props || component).figure;
    if (!figure || !figure.layout || !figure.layout.map) {
      return;
    }
    if (!gd.dataset.listening && gd.on) {
      // A zoom or pan by the operator (Plotly reports those, not the figures it is given) is theirs to keep.
      gd.on("plotly_relayout", function (change) {
        if (!change || !("map.zoom" in change || "map.center" in change)) {
          return;
        }
        // The map reports every move, the fit's own too: only a view other than the fitted one is a move.
        var zoom = change["map.zoom"], centre = change["map.center"];
        var fitted = JSON.parse(gd.dataset.fittedView || "null");
        var same =
          fitted &&
          (zoom === undefined || Math.abs(zoom - fitted.zoom) < 0.01) &&
          (!centre || (Math.abs(centre.lon - fitted.center.lon) < 1e-4 && Math.abs(centre.lat - fitted.center.lat) < 1e-4));
        if (!same) {
          gd.dataset.moved = String(gd.layout.uirevision);
        }
      });
      gd.dataset.listening = "1";
    }
    // Fitted already, and the figure still holds that view or the operator has moved it since: nothing to
    // do. (A whole figure sent again for the same area brings the server's first guess back: fitted again.)
    var kept = figure.layout.map.zoom === Number(gd.dataset.fittedZoom) || gd.dataset.moved === String(layout.uirevision);
    if (gd.dataset.fitted === key && kept) {
      return;
    }
    gd.dataset.fitted = key;
    var view = zoomFor(box, gd.offsetWidth, gd.offsetHeight);
    var zoom = Math.round(view.zoom * 100) / 100;
    gd.dataset.fittedZoom = String(zoom);
    gd.dataset.fittedView = JSON.stringify({ center: view.center, zoom: zoom });
    var map = Object.assign({}, figure.layout.map, { center: view.center, zoom: zoom });
    clientside.set_props(id, { figure: Object.assign({}, figure, { layout: Object.assign({}, figure.layout, { map: map }) }) });
  }

  // A wall cannot scroll: a list longer than its panel says how many of its rows the panel leaves out.
  function countHidden(card) {
    var bottom = card.getBoundingClientRect().bottom;
    var rows = card.querySelectorAll("tbody tr");
    var hidden = 0;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getBoundingClientRect().bottom > bottom - parseFloat(getComputedStyle(card).fontSize) * 1.8) {
        hidden++;
      }
    }
    var said = hidden ? "and " + hidden + " more row" + (hidden > 1 ? "s" : "") + " not shown" : "";
    if ((card.getAttribute("data-more") || "") !== said) {
      if (said) {
        card.setAttribute("data-more", said);
      } else {
        card.removeAttribute("data-more");
      }
    }
  }

  setInterval(function () {
    var cards = document.querySelectorAll(".shell.wall .wall-slot:not(.parked) .card");
    for (var c = 0; c < cards.length; c++) {
      countHidden(cards[c]);
    }
    var maps = document.querySelectorAll(".js-plotly-plot");
    for (var i = 0; i < maps.length; i++) {
      if (maps[i].offsetParent !== null) {
        fit(maps[i]);
      }
    }
  }, 400);
})();

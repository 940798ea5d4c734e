// CampusCard payment codes on the phone: the same algorithm as campuscard/domain/paycode.py.
// Runs with the network off once loaded: the device secret lives in localStorage after binding.
// Code layout (20 digits): scheme "6" (or "7" for a phone bound before scheme 6) | token (8) |
// step % 1000 (3) | counter (1) | HMAC (6) | Luhn. The schemes differ only in how the server
// derives the secret the phone was given (payments/code_rules.py).
// HMAC-SHA256 through Web Crypto; pages served over plain HTTP (no crypto.subtle outside a
// secure context) fall back to the small SHA-256 below, which a test checks against Python.
(function (root) {
  "use strict";

  var STEP_MODULUS = 1000;
  var MAC_DIGITS = 6;

  function luhnDigit(digits) {
    var total = 0;
    for (var i = 0; i < digits.length; i += 1) {
      var d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2 === 0) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      total += d;
    }
    return String((10 - (total % 10)) % 10);
  }

  function utf8(text) {
    return new TextEncoder().encode(text);
  }

  // ---- SHA-256 / HMAC fallback (FIPS 180-4), used only without crypto.subtle ----
  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
  ]);

  function sha256(bytes) {
    var h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
      0x5be0cd19,
    ]);
    var bitLen = bytes.length * 8;
    var padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    var view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
    view.setUint32(padded.length - 4, bitLen >>> 0);
    var w = new Uint32Array(64);
    for (var off = 0; off < padded.length; off += 64) {
      for (var t = 0; t < 16; t += 1) w[t] = view.getUint32(off + t * 4);
      for (t = 16; t < 64; t += 1) {
        var x = w[t - 15];
        var y = w[t - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (t = 0; t < 64; t += 1) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var ch = (e & f) ^ (~e & g);
        var t1 = (k + S1 + ch + K[t] + w[t]) >>> 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var maj = (a & b) ^ (a & c) ^ (b & c);
        var t2 = (S0 + maj) >>> 0;
        k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }
    var out = new Uint8Array(32);
    var outView = new DataView(out.buffer);
    for (var i = 0; i < 8; i += 1) outView.setUint32(i * 4, h[i]);
    return out;
  }

  function hmacSha256Fallback(key, message) {
    if (key.length > 64) key = sha256(key);
    var ipad = new Uint8Array(64 + message.length);
    var opad = new Uint8Array(64 + 32);
    for (var i = 0; i < 64; i += 1) {
      var kb = i < key.length ? key[i] : 0;
      ipad[i] = kb ^ 0x36;
      opad[i] = kb ^ 0x5c;
    }
    ipad.set(message, 64);
    opad.set(sha256(ipad), 64);
    return sha256(opad);
  }

  function subtle() {
    var c = root.crypto;
    return c && c.subtle ? c.subtle : null;
  }

  async function hmacSha256(key, message, forceFallback) {
    var s = forceFallback ? null : subtle();
    if (!s) return hmacSha256Fallback(key, message);
    var cryptoKey = await s.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    return new Uint8Array(await s.sign("HMAC", cryptoKey, message));
  }

  async function macDigits(secret, token, step, counter, forceFallback, scheme) {
    var version = scheme === "6" ? "v2" : "v1";
    var message = utf8("cc-paycode:" + version + ":" + token + ":" + step + ":" + counter);
    var digest = await hmacSha256(secret, message, forceFallback);
    var offset = digest[31] & 0x0f;
    var value =
      ((digest[offset] & 0x7f) * 0x1000000) +
      (digest[offset + 1] << 16) +
      (digest[offset + 2] << 8) +
      digest[offset + 3];
    return String(value % Math.pow(10, MAC_DIGITS)).padStart(MAC_DIGITS, "0");
  }

  function hexToBytes(hex) {
    var out = new Uint8Array(hex.length / 2);
    for (var i = 0; i < out.length; i += 1) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  // The code for time step `step` (floor(unix seconds / step seconds)) and counter 0..9, of
  // the binding's scheme ("6" or "7"; "7" when not given).
  async function generate(secret, token, step, counter, forceFallback, scheme) {
    if (typeof secret === "string") secret = hexToBytes(secret);
    if (!/^[0-9]{8}$/.test(token)) throw new Error("account token must be 8 digits");
    scheme = scheme || "7";
    if (scheme !== "6" && scheme !== "7") throw new Error("scheme must be 6 or 7");
    counter = counter || 0;
    if (counter < 0 || counter > 9) throw new Error("counter must be 0..9");
    var mac = await macDigits(secret, token, step, counter, forceFallback, scheme);
    var low = String(step % STEP_MODULUS).padStart(3, "0");
    var body = scheme + token + low + String(counter) + mac;
    return body + luhnDigit(body);
  }

  function timeStep(unixMillis, stepSeconds) {
    return Math.floor(unixMillis / 1000 / stepSeconds);
  }

  // ---- Code 128 (set C for even-length digits, set B otherwise), as domain/code128.py ----
  var PATTERNS = (
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 " +
    "221312 231212 112232 122132 122231 113222 123122 123221 223211 221132 " +
    "221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 " +
    "212123 212321 232121 111323 131123 131321 112313 132113 132311 211313 " +
    "231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 " +
    "231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 " +
    "314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 " +
    "112412 122114 122411 142112 142211 241211 221114 413111 241112 134111 " +
    "111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 " +
    "214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 " +
    "114131 311141 411131 211412 211214 211232 2331112"
  ).split(" ");

  function code128Modules(text) {
    var data = [];
    var start;
    var i;
    if (/^([0-9]{2})+$/.test(text)) {
      start = 105;
      for (i = 0; i < text.length; i += 2) data.push(parseInt(text.substr(i, 2), 10));
    } else {
      start = 104;
      for (i = 0; i < text.length; i += 1) {
        var cc = text.charCodeAt(i);
        if (cc < 32 || cc > 126) throw new Error("Code 128 here takes printable ASCII only");
        data.push(cc - 32);
      }
    }
    var check = start;
    for (i = 0; i < data.length; i += 1) check += (i + 1) * data[i];
    var values = [start].concat(data, [check % 103, 106]);
    var widths = [];
    values.forEach(function (v) {
      PATTERNS[v].split("").forEach(function (ch) {
        widths.push(Number(ch));
      });
    });
    return widths;
  }

  function code128Svg(text, heightPx) {
    var quiet = 10;
    var h = heightPx || 80;
    var widths = code128Modules(text);
    var total = widths.reduce(function (a, b) { return a + b; }, 0) + 2 * quiet;
    var x = quiet;
    var rects = "";
    for (var i = 0; i < widths.length; i += 1) {
      if (i % 2 === 0) rects += '<rect x="' + x + '" y="0" width="' + widths[i] + '" height="' + h + '"/>';
      x += widths[i];
    }
    return (
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' + total + " " + h +
      '" preserveAspectRatio="none" role="img" aria-label="' + text +
      '" shape-rendering="crispEdges"><rect width="' + total + '" height="' + h +
      '" fill="#fff"/><g fill="#000">' + rects + "</g></svg>"
    );
  }

  // QR through the vendored qrcode-generator (js/vendor/qrcode-generator-1.4.4.js, MIT).
  function qrMake(text) {
    var q = root.qrcode(0, "M");
    q.addData(text, "Numeric");
    q.make();
    return q;
  }

  function qrSvg(text) {
    return qrMake(text).createSvgTag({ cellSize: 4, margin: 16, scalable: true, alt: text });
  }

  // Rows of booleans (dark modules), for tests and for drawing on a canvas.
  function qrMatrix(text) {
    var q = qrMake(text);
    var n = q.getModuleCount();
    var rows = [];
    for (var r = 0; r < n; r += 1) {
      var row = [];
      for (var c = 0; c < n; c += 1) row.push(q.isDark(r, c));
      rows.push(row);
    }
    return rows;
  }

  root.CCPaycode = {
    generate: generate,
    timeStep: timeStep,
    luhnDigit: luhnDigit,
    sha256: sha256,
    hmacSha256: hmacSha256,
    code128Modules: code128Modules,
    code128Svg: code128Svg,
    qrSvg: qrSvg,
    qrMatrix: qrMatrix,
  };
})(typeof window !== "undefined" ? window : globalThis);

// Student-record upload from the console (seed 004 step 1, browser side): frame the file with
// its SHA-256, send it, check the server's echo, and send again up to 3 attempts in all.
// A browser cannot parse xlsx here, so it checks that the server stored exactly these bytes
// (digest echo) and that the canonical echo is self-consistent; the CLI uploader compares the
// echo row by row (clients/import_uploader.py).
(function () {
  "use strict";
  var ATTEMPTS = 3;
  var RETRYABLE = { DIGEST_MISMATCH: 1, FRAME_INVALID: 1 };
  var enc = new TextEncoder();

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function sha256(bytes) {
    return crypto.subtle.digest("SHA-256", bytes).then(hex);
  }

  function frame(bytes, digest) {
    var head = enc.encode("CCIMPORT/1 START " + bytes.byteLength + "\n");
    var tail = enc.encode("\nCCIMPORT/1 END " + digest + "\n");
    var out = new Uint8Array(head.length + bytes.byteLength + tail.length);
    out.set(head, 0);
    out.set(new Uint8Array(bytes), head.length);
    out.set(tail, head.length + bytes.byteLength);
    return out;
  }

  var MONEY = { amount: 1, total: 1 };  // a sheet's total and a billed amount, as the page writes money
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, key) {
      if (values[key] === undefined) return "";
      return MONEY[key] && window.ccMoney ? window.ccMoney(values[key]) : String(values[key]);
    });
  }

  function camel(code) {  // NO_STUDENT -> NoStudent, the dataset name of data-reason-no-student
    return code.toLowerCase().split("_").map(function (part) {
      return part.charAt(0).toUpperCase() + part.slice(1);
    }).join("");
  }

  function show(box, lines, ok) {
    box.textContent = "";
    box.className = "result " + (ok ? "ok" : "error");
    lines.forEach(function (line) {
      var p = document.createElement("p");
      p.textContent = line;
      box.appendChild(p);
    });
  }

  function target(form) {  // the upload URL, with the form's other fields (a pay month) as query
    var params = new URLSearchParams();
    form.querySelectorAll("input[name]:not([type=file])").forEach(function (input) {
      params.append(input.name, input.value);
    });
    var query = params.toString();
    var url = form.dataset.importUpload;
    return query ? url + (url.indexOf("?") < 0 ? "?" : "&") + query : url;
  }

  function attempt(form, box, bytes, digest, name, n, history) {
    var body = frame(bytes, digest);
    return fetch(target(form), {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/x-campuscard-import",
        "X-Filename": encodeURIComponent(name),
        "X-CSRF-Token": form.dataset.csrf
      },
      body: body
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        return { status: r.status, data: data };
      });
    }).then(function (answer) {
      if (answer.status === 200) {
        var echo = (answer.data.canonical || []).join("\n");
        return sha256(enc.encode(echo)).then(function (echoDigest) {
          if (answer.data.sha256 === digest && echoDigest === answer.data.canonical_sha256 &&
              (answer.data.canonical || []).length === answer.data.rows) {
            history.push("#" + n + ": OK" + (answer.data.version ? " v" + answer.data.version : ""));
            // what was done to read the file (encoding, sheet, characters), in the page's words
            var notes = (answer.data.notes || []).map(function (note) {
              var text = form.dataset["note" + note.code.charAt(0).toUpperCase() + note.code.slice(1)];
              if (!text) return note.message;
              return text.replace("{value}", note.value || "").replace("{rows}", (note.rows || []).join(", "));
            });
            // a page may word the success itself (data-ok-text="… {rows} … {added} …")
            var ok = form.dataset.okText ? fill(form.dataset.okText, answer.data) :
              "上传成功 upload succeeded: v" + answer.data.version + ", " + answer.data.rows +
              " rows (+" + answer.data.added + ", ~" + answer.data.updated + ")";
            show(box, history.concat([ok], notes), true);
            // a page may go on to what the upload made (data-ok-redirect="…/{batch_id}")
            if (form.dataset.okRedirect) window.location.assign(fill(form.dataset.okRedirect, answer.data));
            return true;
          }
          history.push("#" + n + ": echo does not match");
          return false;
        });
      }
      var error = (answer.data && answer.data.error) || {};
      history.push("#" + n + ": " + (error.code || answer.status) + " " + (error.message || ""));
      if (RETRYABLE[error.code] || answer.status >= 500) return false;
      var rows = ((error.details || {}).errors || []).map(function (e) {
        if (form.dataset.rowText) {  // the page's words, with its label for the field
          var label = form.dataset["field" + camel(e.field)];  // class_name: data-field-class-name
          // and its words for the reason, by the row's code (data-reason-no-student="…{number}…")
          var worded = e.code && form.dataset["reason" + camel(e.code)];
          var reason = worded ? fill(worded, e.params || {}) : e.reason;
          return fill(form.dataset.rowText, { row: e.row, field: label || e.field, reason: reason });
        }
        return "row " + e.row + " · " + e.field + " · " + e.reason;
      });
      // a page that words the refusal says so in its language instead of the attempt log:
      // bad rows under its sentence, a refusal of the whole file (data-err-file-empty) alone
      var whole = !rows.length && error.code && form.dataset["err" + camel(error.code)];
      if (whole) {
        show(box, [whole], false);
        return null;
      }
      var head = form.dataset.refusedText && rows.length ? [form.dataset.refusedText] : history;
      show(box, head.concat(rows), false);
      return null; // refused for a reason a retry will not fix
    }, function (err) {
      history.push("#" + n + ": network error " + err);
      return false;
    });
  }

  function bind(form) {
    var box = form.parentNode.querySelector("[data-import-result]");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var file = form.querySelector("input[type=file]").files[0];
      if (!file) return;
      file.arrayBuffer().then(function (bytes) {
        return sha256(bytes).then(function (digest) {
          var history = [];
          var n = 0;
          function next() {
            n += 1;
            return attempt(form, box, bytes, digest, file.name, n, history).then(function (done) {
              if (done === false && n < ATTEMPTS) return next();
              if (done === false) {
                var failed = form.dataset.failedText ? fill(form.dataset.failedText, { attempts: n }) : "upload failed after " + n + " attempts";
                show(box, history.concat([failed]), false);
              }
            });
          }
          return next();
        });
      });
    });
  }

  document.querySelectorAll("[data-import-upload]").forEach(bind);
})();

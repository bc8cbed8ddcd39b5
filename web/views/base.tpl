<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{csrf}}">
<title>{{title}} · Hearth</title>
<link rel="stylesheet" href="/static/hearth.css">
<script src="/static/hearth.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/">Hearth</a>
  % if signed_in:
  <nav aria-label="Pages">
    % for href, label in nav:
    <a href="{{href}}"{{!' aria-current="page"' if path == href else ''}}>{{label}}</a>
    % end
  </nav>
  <form method="post" action="/logout" class="logout">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" class="link">Sign out</button>
  </form>
  % end
</header>
<main>
  <h1>{{title}}</h1>
  <div id="notice" class="notice" role="status"{{!'' if notice else ' hidden'}}>{{notice}}</div>
  % if errors:
  <div class="banner-error" role="alert">Nothing was changed: please fix the fields marked below.</div>
  % end
  {{!base}}
</main>
</body>
</html>

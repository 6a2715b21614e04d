-- Bounded POST load against flaskapp's /orders through nginx.
wrk.method = "POST"
wrk.body = "item=reload"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Host"] = "flask.test"

-- Paced: each connection waits 50 ms between requests.
function delay()
  return 50
end

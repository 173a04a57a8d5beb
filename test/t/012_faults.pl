# The fault matrix of the evm_rpc source: a fault-injecting JSON-RPC proxy
# (test/fault_proxy.js) between the worker and a real anvil node.  For each
# fault: the problem shows in status.last_error and the errors counter,
# nothing inconsistent is applied, and once the fault stops the pipeline
# catches up fully -- every balance equals balanceOf and every Transfer is
# applied exactly once (events_applied equals the number sent).  Also:
# eth_getLogs range limits as providers word them (the range shrinks, no
# error), an ambiguous -32005 classified by its message, Retry-After
# honoured, several URLs with failover, the request rate limit, and
# credentials in a URL never shown.
use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use LiTest;

my $rpc = li_anvil();
my $token = chain('deploy', $rpc);
chain('mint', $rpc, $token);
my $sent = 10;    # Transfer events on the chain (mint: 10)

# the proxy, on a free port, in front of anvil
my ($purl, $control) = li_proxy($rpc);
my ($pport) = $purl =~ /:(\d+)$/;
sub control { return $control->(@_); }
sub fault { return control('__fault', {@_}); }
sub clear { return control('__clear'); }
sub stats { return control('__stats'); }

my $node = li_node('faults');
$node->safe_psql('postgres', slurp_file(li_root() . '/test/fixtures/erc20.sql'));
my $transfer = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('f', 'evm_rpc',
		'{"url":"$purl","addresses":["$token"],"topics":[["$transfer"]],
		  "block_range":7,"poll_ms":200,"timeout_ms":3000,"max_response_bytes":1000000}');
	SELECT ledger_ingest.add_handler('f', 'erc20_on_transfer(ledger_ingest.event)');
	SELECT ledger_ingest.start('f');
});

sub status
{
	my ($p, $col) = @_;
	return li_scalar($node, "SELECT coalesce(${col}::text, '') FROM ledger_ingest.status WHERE pipeline = '$p'");
}

# every balance equals balanceOf, and every Transfer was applied once
sub consistent
{
	my ($p) = @_;
	my $head = chain('head', $rpc);
	return 0 unless li_wait($node, $p, $head, 90);
	my $same = li_same_balances($node, $rpc, $token);
	my $applied = status($p, 'events_applied');
	diag("$p: balances differ from balanceOf") unless $same;
	diag("$p: $applied events applied, $sent sent") unless $applied == $sent;
	return $same && $applied == $sent;
}

ok(consistent('f'), 'caught up through the proxy before any fault');

# wait until the errors counter passed $before and last_error matches $re
sub error_seen
{
	my ($before, $re) = @_;
	my $err = '';
	for (1 .. 300)
	{
		$err = status('f', 'last_error');
		return 1 if status('f', 'errors') > $before && $err =~ $re;
		usleep(100_000);
	}
	diag("last_error: $err");
	my @log = @{ stats()->{log} };
	diag('proxy: ' . join("\n", map { encode_json($_) } @log[ ($#log > 8 ? $#log - 8 : 0) .. $#log ]));
	return 0;
}

my $seed = 100;
sub transfers { my ($n) = @_; chain('transfers', $rpc, $token, $n, $seed++); $sent += $n; }

# [ name, fault, expected last_error, keep until seen (then clear) ]
my @faults = (
	[ 'connection refused', { mode => 'refuse', count => -1 }, qr/failed: .*(Empty reply|reset|Recv failure|Connection)/i, 1 ],
	[ 'no answer (hang)', { mode => 'hang', count => 1, method => 'eth_blockNumber' }, qr/eth_blockNumber failed: .*(timed out|Timeout)/i ],
	[ 'stall mid-body', { mode => 'stall', count => 1, method => 'eth_getLogs' }, qr/eth_getLogs failed: .*(timed out|Timeout)/i ],
	[ 'HTTP 429 without Retry-After', { mode => 'http_status', status => 429, count => 2 }, qr/HTTP status 429 \(rate limited\)/ ],
	[ 'HTTP 500', { mode => 'http_status', status => 500, count => 2 }, qr/HTTP status 500/ ],
	[ 'HTTP 502', { mode => 'http_status', status => 502, count => 2 }, qr/HTTP status 502/ ],
	[ 'HTTP 503', { mode => 'http_status', status => 503, count => 2 }, qr/HTTP status 503/ ],
	[ 'HTML instead of JSON', { mode => 'html', count => 2 }, qr/the response is not JSON \(it starts with "</ ],
	[ 'truncated JSON', { mode => 'truncated', count => 1, method => 'eth_getBlockByNumber' }, qr/eth_getBlockByNumber: the response is not valid JSON/ ],
	[ 'malformed JSON', { mode => 'malformed', count => 1, method => 'eth_getLogs' }, qr/eth_getLogs: the response is not valid JSON/ ],
	# eth_getLogs answers are read log by log (rpc_stream.c): broken after
	# some logs were read, or found wrong only at their end
	[ 'eth_getLogs answer cut after some logs', { mode => 'truncated', count => 1, method => 'eth_getLogs' }, qr/eth_getLogs: the response is not valid JSON/ ],
	[ 'eth_getLogs answer to another id', { mode => 'wrong_id', count => 1, method => 'eth_getLogs' }, qr/eth_getLogs: the response id does not match the request id/ ],
	[ 'eth_getLogs answer with a result and an error', { mode => 'result_and_error', count => 1, method => 'eth_getLogs' }, qr/eth_getLogs: the response has "result" twice, or both "result" and "error"/ ],
	[ 'JSON-RPC error object', { mode => 'rpc_error', code => -32000, message => 'internal error', count => 1, method => 'eth_getLogs' }, qr/eth_getLogs returned error -32000: internal error/ ],
	[ 'wrong id', { mode => 'wrong_id', count => 1 }, qr/the response id does not match the request id/ ],
	[ 'null eth_blockNumber', { mode => 'null_result', count => 1, method => 'eth_blockNumber' }, qr/eth_blockNumber: the result is not a quantity/ ],
	[ 'null eth_getLogs', { mode => 'null_result', count => 1, method => 'eth_getLogs' }, qr/eth_getLogs: the result is not an array/ ],
	[ 'null block', { mode => 'null_result', count => 1, method => 'eth_getBlockByNumber' }, qr/eth_getBlockByNumber: block \d+ is not available/ ],
	[ 'logs with another blockHash', { mode => 'logs_mismatch', count => 1, method => 'eth_getLogs' }, qr/blockHash" does not match the ledger hash/ ],
	[ 'logs with another blockNumber', { mode => 'logs_mismatch', field => 'blockNumber', count => 1, method => 'eth_getLogs' }, qr/(outside the requested range|does not match the ledger hash|but the ledger number is)/ ],
	[ 'a block other than requested', { mode => 'wrong_block', count => 1, method => 'eth_getBlockByNumber' }, qr/(asked for block \d+, got block \d+|but the ledger number is)/ ],
	[ 'head goes backwards', { mode => 'head_back', by => 20, count => 1, method => 'eth_blockNumber' }, qr/the head went back from \d+ to \d+/ ],
	[ 'response over max_response_bytes', { mode => 'oversize', bytes => 2_000_000, count => 1, method => 'eth_blockNumber' }, qr/response larger than max_response_bytes \(1000000\)/ ],
	[ 'ambiguous -32005 (rate limit, not range)', { mode => 'rpc_error', code => -32005, message => 'daily request count exceeded, request rate limited', count => 1, method => 'eth_getLogs' }, qr/returned error -32005: daily request count exceeded/ ],
);

for my $c (@faults)
{
	my ($name, $f, $re, $until_seen) = @$c;
	my $before = status('f', 'errors');
	fault(%$f);
	transfers(3);
	my $seen = error_seen($before, $re);
	clear() if $until_seen || !$seen;
	my $ok = consistent('f');
	li_case('faults injected', "$name: shown in last_error, then caught up exactly once", $seen && $ok);
	clear();
}

# Retry-After: the next request waits for it (here 2 s, above the backoff)
{
	my $before = status('f', 'errors');
	control('__reset_stats');
	fault(mode => 'http_status', status => 429, retry_after => '2', count => 1, method => 'eth_blockNumber');
	my $seen = error_seen($before, qr/HTTP status 429/);
	usleep(3_000_000);
	my @log = @{ stats()->{log} };
	my ($i) = grep { ($log[$_]{mode} // '') eq 'http_status' } 0 .. $#log;
	my $gap = defined $i && $i < $#log ? $log[ $i + 1 ]{t} - $log[$i]{t} : 0;
	diag('proxy: ' . join("\n", map { encode_json($_) } @log[ $i .. ($i + 3 > $#log ? $#log : $i + 3) ]))
	  if defined $i && $gap < 1900;
	li_case('faults injected', "HTTP 429 with Retry-After: 2 honoured (next request after ${gap} ms)",
		$seen && $gap >= 1900 && consistent('f'));
}

# eth_getLogs range limits as providers word them: the range shrinks (to
# the suggested range, or by half), nothing fails, nothing is lost
my @limits = (
	[ 'Alchemy: log response size, suggested range', { max_range => 2, code => -32602,
		message => 'Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [{from}, {to}]' } ],
	[ 'Infura: more than 10000 results, suggested range', { max_range => 3, code => -32005,
		message => 'query returned more than 10000 results. Try with this block range [{from}, {to}].' } ],
	[ 'block range too large (halving)', { max_range => 2, code => -32000, suggest => JSON::PP::false,
		message => 'block range too large' } ],
	[ 'exceeds max results (halving)', { max_range => 1, code => -32602, suggest => JSON::PP::false,
		message => 'eth_getLogs exceeds max results 20000, retry with the range 1-2' } ],
	[ 'limit exceeded (halving)', { max_range => 2, code => -32005, suggest => JSON::PP::false,
		message => 'limit exceeded' } ],
);
for my $c (@limits)
{
	my ($name, $f) = @$c;
	$node->safe_psql('postgres', q{SELECT ledger_ingest.stop('f')});
	li_wait_state($node, 'f', 'stopped', 30);
	transfers(8);
	control('__reset_stats');
	fault(mode => 'range_limit', count => -1, method => 'eth_getLogs', %$f);
	$node->safe_psql('postgres', q{SELECT ledger_ingest.start('f')});
	my $ok = consistent('f');
	my $st = stats();
	my $limited = $st->{by_mode}{range_limit} // 0;
	my $after = status('f', 'errors');    # start() cleared it
	diag("$name: caught up $ok, $limited range errors, $after errors: " . status('f', 'last_error'))
	  unless $ok && $limited >= 1 && $after == 0;
	clear();
	li_case('faults injected', "eth_getLogs range limit, $name: split, no error, nothing lost",
		$ok && $limited >= 1 && $after == 0);
}

# JSON-RPC batches: the headers of a range go in one HTTP request
# (rpc_batch_size).  Each case stops the pipeline, makes 8 transfers (8
# blocks with logs: two ranges of block_range 7, so batches of several
# headers), installs the fault and starts the pipeline again (a new
# fetcher: nothing remembered from an earlier case).  Answers matched by
# id in any order; what a batch leaves unanswered is asked again; a node
# that refuses or limits batches gets smaller ones, down to single calls,
# and that is remembered (the fault applies once, however many ranges
# follow); a batch answer that breaks the protocol is an error, then
# caught up.
# the largest batch sent after the one a fault of this mode took (0: none)
my $batch_after = sub {
	my ($st, $mode) = @_;
	my ($seen, $max) = (0, 0);
	for my $e (@{ $st->{log} })
	{
		if (($e->{mode} // '') eq $mode) { $seen = 1; next; }
		$max = $e->{batch} if $seen && ($e->{batch} // 0) > $max;
	}
	return $max;
};
my @batch_cases = (
	[ 'a batch answered out of order', { mode => 'batch_reorder', count => -1 }, undef,
		sub { $_[0]{by_mode}{batch_reorder} >= 1 } ],
	[ 'a batch with one call answered by an error', { mode => 'rpc_error', in_batch => JSON::PP::true, count => 1, method => 'eth_getBlockByNumber' }, undef,
		sub { $_[0]{by_mode}{rpc_error} == 1 && $_[0]{batches} >= 1 } ],
	[ 'a batch with an answer missing', { mode => 'batch_drop', index => 1, count => 1 }, undef,
		sub { $_[0]{by_mode}{batch_drop} == 1 } ],
	[ 'batches refused (one error object)', { mode => 'batch_refuse', count => -1 }, undef,
		sub { $_[0]{by_mode}{batch_refuse} == 1 && $_[0]{batches} == 1 } ],
	[ 'batches refused (HTTP 400)', { mode => 'batch_refuse', status => 400, count => -1 }, undef,
		sub { $_[0]{by_mode}{batch_refuse} == 1 && $_[0]{batches} == 1 } ],
	[ 'a batch over the node\'s limit of 3 (geth: "batch too large")', { mode => 'batch_limit', max => 3, count => -1 }, undef,
		sub { $_[0]{by_mode}{batch_limit} == 1 && $batch_after->($_[0], 'batch_limit') >= 2 && $batch_after->($_[0], 'batch_limit') <= 3 } ],
	[ 'a batch cut to the node\'s limit of 3 (answers missing)', { mode => 'batch_limit', max => 3, style => 'truncate', count => -1 }, undef,
		sub { $_[0]{by_mode}{batch_limit} == 1 && $batch_after->($_[0], 'batch_limit') == 3 } ],
	[ 'a batch answer over max_response_bytes', { mode => 'oversize', in_batch => JSON::PP::true, bytes => 1_500_000, count => 1 }, undef,
		sub { $_[0]{by_mode}{oversize} == 1 } ],
	[ 'a batch answer to an id not asked for', { mode => 'wrong_id', in_batch => JSON::PP::true, count => 1, method => 'eth_getBlockByNumber' },
		qr/eth_getBlockByNumber: an answer in a batch has an id that was not asked for, or answered twice/,
		sub { $_[0]{by_mode}{wrong_id} == 1 } ],
	[ 'a batch answered with another block', { mode => 'wrong_block', in_batch => JSON::PP::true, count => 1, method => 'eth_getBlockByNumber' },
		qr/asked for block \d+, got block \d+/,
		sub { $_[0]{by_mode}{wrong_block} == 1 } ],
);
for my $c (@batch_cases)
{
	my ($name, $f, $re, $check) = @$c;
	$node->safe_psql('postgres', q{SELECT ledger_ingest.stop('f')});
	li_wait_state($node, 'f', 'stopped', 30);
	transfers(8);
	control('__reset_stats');
	fault(%$f);
	$node->safe_psql('postgres', q{SELECT ledger_ingest.start('f')});
	my $seen = defined $re ? error_seen(0, $re) : 1;
	my $ok = consistent('f');
	my $st = stats();
	my $errors = status('f', 'errors');
	my $as_expected = $check->($st) ? 1 : 0;
	diag("$name: error seen $seen, caught up $ok, stats as expected $as_expected, $errors errors: "
		  . status('f', 'last_error') . '; ' . encode_json({ map { $_ => $st->{$_} } qw(requests calls batches by_mode) }))
	  unless $seen && $ok && $as_expected && (defined $re || $errors == 0);
	clear();
	li_case('faults injected', "JSON-RPC batch: $name: " . (defined $re ? 'shown in last_error, then caught up' : 'no error, nothing lost'),
		$seen && $ok && $as_expected && (defined $re || $errors == 0));
}

# several URLs: a dead endpoint first, the proxy second
my $dead = PostgreSQL::Test::Cluster::get_free_port();
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.stop('f');
	CREATE TABLE seen_multi (ledger bigint, log_index int);
	CREATE FUNCTION see_multi(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO seen_multi VALUES (e.ledger, e.event_index) \$\$;
	SELECT ledger_ingest.create_pipeline('multi', 'evm_rpc',
		'{"urls":["http://127.0.0.1:$dead/","$purl"],"addresses":["$token"],"topics":[["$transfer"]],
		  "block_range":50,"poll_ms":200}');
	SELECT ledger_ingest.add_handler('multi', 'see_multi(ledger_ingest.event)');
	SELECT ledger_ingest.start('multi');
});
transfers(2);
my $head = chain('head', $rpc);
li_case('faults injected', 'first of two URLs refuses: failed over, caught up',
	li_wait($node, 'multi', $head, 60)
	  && li_scalar($node, 'SELECT count(*) || ' . q{' ' || count(DISTINCT (ledger, log_index)) FROM seen_multi}) eq "$sent $sent");
# then the second fails (HTTP 503): the first is still dead, so the error
# names the endpoint by position, never by URL
fault(mode => 'http_status', status => 503, count => -1);
my $err = '';
for (1 .. 100)
{
	$err = status('multi', 'last_error');
	last if $err =~ /HTTP status 503/;
	usleep(100_000);
}
clear();
li_case('faults injected', 'both URLs failing: the error names the endpoint by position',
	$err =~ /\(endpoint 2 of 2\): HTTP status 503/ && $err !~ /127\.0\.0\.1:$pport/);
$node->safe_psql('postgres', q{SELECT ledger_ingest.stop('multi')});

# request rate limit: at most 4 requests per second (idle polling would
# otherwise make about 10)
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('slow', 'evm_rpc',
		'{"url":"$purl","addresses":["$token"],"topics":[["$transfer"]],"poll_ms":100,
		  "max_requests_per_second":4,"from_block":$head}');
	SELECT ledger_ingest.start('slow');
});
li_wait($node, 'slow', $head, 30);
control('__reset_stats');
usleep(3_000_000);
my @t = @{ stats()->{times} };
my $min_gap = 1e9;
$min_gap = ($t[$_] - $t[ $_ - 1 ] < $min_gap ? $t[$_] - $t[ $_ - 1 ] : $min_gap) for 1 .. $#t;
li_case('faults injected', sprintf('max_requests_per_second 4: %d requests in 3 s, min gap %d ms', scalar(@t), $min_gap),
	@t >= 4 && @t <= 14 && $min_gap >= 240);
$node->safe_psql('postgres', q{SELECT ledger_ingest.stop('slow')});

# redirects: followed (POST kept) to http(s) only, at most max_redirects;
# a tiny HTTP server answers every request with a redirect to $target
our @redirectors;
END { kill 'KILL', @redirectors if @redirectors; }
sub redirector
{
	my ($target) = @_;
	my $srv = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
	  or die "listen: $!";
	my $port = $srv->sockport;
	$target =~ s/SELF/http:\/\/127.0.0.1:$port\//;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		while (my $c = $srv->accept)
		{
			my ($hdr, $len) = ('', 0);
			while (my $line = <$c>) { $len = $1 if $line =~ /^content-length:\s*(\d+)/i; last if $line eq "\r\n"; }
			read($c, my $body, $len) if $len;
			print $c "HTTP/1.1 307 Temporary Redirect\r\nLocation: $target\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
			close $c;
		}
		POSIX::_exit(0);    # not exit: the parent's END blocks must not run here
	}
	close $srv;
	push @redirectors, $pid;
	return "http://127.0.0.1:$port/";
}
my @redirect_cases = (
	[ 'a redirect to the node: followed', "$purl/", qr/^$/ ],
	[ 'a redirect to file://: refused', 'file:///etc/passwd', qr/(Protocol "file" not supported|disabled)/ ],
	[ 'a redirect loop: stopped after max_redirects', 'SELF', qr/Maximum \(3\) redirects followed/ ],
);
my $rn = 0;
for my $c (@redirect_cases)
{
	my ($name, $target, $re) = @$c;
	my $p = 'redir' . (++$rn);
	my $url = redirector($target);
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc', '{"url":"$url","poll_ms":200,"max_redirects":3}');
		SELECT ledger_ingest.start('$p');
	});
	my $head = chain('head', $rpc);
	my $ok;
	if ($target =~ /^http:\/\/127/)
	{
		$ok = li_wait($node, $p, $head, 30) && status($p, 'errors') == 0;
	}
	else
	{
		my $err = '';
		for (1 .. 100) { $err = status($p, 'last_error'); last if $err ne ''; usleep(100_000); }
		$ok = $err =~ $re && status($p, 'ledger') eq '-1';
		diag("$name: $err") unless $ok;
	}
	li_case('faults injected', $name, $ok);
	$node->safe_psql('postgres', "SELECT ledger_ingest.stop('$p')");
}

# credentials in a URL never show: not in status, notifications or the log
my $listener = li_listen($node);
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('secret', 'evm_rpc',
		'{"url":"http://alice:s3cretpass\@127.0.0.1:$dead/v2/k3yk3yk3y","max_retries":0}');
	SELECT ledger_ingest.start('secret');
});
for (1 .. 100) { last if status('secret', 'last_error') ne ''; usleep(100_000); }
my $spid = li_worker_pid($node, 'secret');
usleep(1_500_000);    # a few retries, each logged
my $shown = join("\n", status('secret', 'last_error'),
	li_scalar($node, q{SELECT string_agg(coalesce(last_error, ''), ' ') FROM ledger_ingest.status}),
	map { encode_json($_) } li_drain($listener));
$node->safe_psql('postgres', q{SELECT ledger_ingest.stop('secret')});
# what the worker logged (the test's own statements are logged too)
my $log = join('', grep { /\[$spid\]/ } split /^/, slurp_file($node->logfile));
li_case('faults injected', 'credentials in a URL: not in status, notifications or the server log',
	$shown =~ /failed/ && $log =~ /failed/ && $shown !~ /s3cretpass|k3yk3yk3y|alice/ && $log !~ /s3cretpass|k3yk3yk3y|alice/);

$node->stop;
done_testing();

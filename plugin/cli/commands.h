/* One line per `malfam` sub-command: CMD(name, summary) expects
 * `int cli_<name>(int argc, char **argv)` (argv[0] = the command name) in plugin/cli/,
 * returning the process exit status (0 ok, 1 failure, 2 bad input or usage). */
CMD(extract, "print the API calls of a Cuckoo/CAPE report.json, one per line")
CMD(eval, "measure the scoring modes on a labelled split: tables, JSON, SVG, open set, CV")
CMD(score, "rank the families for report.json files offline, one JSON answer per report")
CMD(classify, "ask malfamd for the families of report.json files (prints its answer, no write)")
CMD(label, "have malfamd classify report.json files and store the answer in them (key malfam)")
CMD(train, "train the per-family LSTM models and patterns: Mal-API files or a report list")
CMD(patterns, "print each family's representative API-call pattern and training stats")
CMD(info, "describe a model file: id, format, families and samples, modes, options, thresholds")
CMD(ping, "ask malfamd whether it is up (its version and model id)")
CMD(stats, "print malfamd's counters and latencies as JSON")
CMD(reload, "have malfamd reload its model; exit status says whether the new one serves")

package com.bluelm.edge.core;

import java.io.BufferedReader;
import java.io.FileReader;
import java.io.IOException;

/**
 * What the chat screen shows while an answer streams: the decode rate so far (tokens sampled
 * after the first piece, which comes after the prefill, over the time since it) and the process's
 * resident memory ({@code VmRSS} of {@code /proc/self/status}, as on Android). Fed by the engine
 * from the runner's callback thread; read from the UI thread.
 */
public final class LiveStats {

    private long firstNanos = -1;
    private long lastNanos;
    private int tokens;

    /** A new answer begins. */
    public synchronized void reset() {
        firstNanos = -1;
        tokens = 0;
    }

    /** A sampled piece of {@code n} tokens arrived at {@code nowNanos}. */
    public synchronized void onTokens(int n, long nowNanos) {
        if (firstNanos < 0) {
            firstNanos = nowNanos; // the prefill's token: the decode clock starts here
        } else {
            tokens += n;
        }
        lastNanos = nowNanos;
    }

    /** Decode tokens per second so far (0 before two pieces). */
    public synchronized double tokensPerSecond() {
        long dt = lastNanos - firstNanos;
        return firstNanos < 0 || dt <= 0 ? 0.0 : tokens * 1e9 / dt;
    }

    /** {@code VmRSS} in bytes from the text of a {@code /proc/<pid>/status}, or -1. */
    public static long residentBytes(String status) {
        for (String line : status.split("\n")) {
            if (line.startsWith("VmRSS:")) {
                String[] f = line.substring(6).trim().split("\\s+");
                long v = Long.parseLong(f[0]);
                return f.length > 1 && f[1].equalsIgnoreCase("kB") ? v * 1024L : v;
            }
        }
        return -1;
    }

    /** This process's resident memory in bytes, or -1 where /proc is not readable. */
    public static long residentBytes() {
        StringBuilder sb = new StringBuilder();
        try {
            BufferedReader r = new BufferedReader(new FileReader("/proc/self/status"));
            try {
                for (String line = r.readLine(); line != null; line = r.readLine()) {
                    sb.append(line).append('\n');
                }
            } finally {
                r.close();
            }
        } catch (IOException e) {
            return -1;
        }
        return residentBytes(sb.toString());
    }

    /** One line for the screen: "12.3 tok/s · 1.84 GB resident". */
    public String line() {
        long rss = residentBytes();
        String mem = rss < 0 ? "" : String.format(" \u00b7 %.2f GB resident", rss / 1e9);
        return String.format("%.1f tok/s", tokensPerSecond()) + mem;
    }
}

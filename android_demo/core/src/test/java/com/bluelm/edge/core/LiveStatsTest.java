package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

/** LiveStats: the decode rate from piece times, VmRSS parsing, and this JVM's own resident memory. */
public class LiveStatsTest {

    @Test
    public void rateCountsTokensAfterThePrefillPiece() {
        LiveStats s = new LiveStats();
        assertEquals(0.0, s.tokensPerSecond(), 0.0);
        s.onTokens(1, 5000000000L); // the prefill's token: clock starts
        assertEquals(0.0, s.tokensPerSecond(), 0.0);
        s.onTokens(1, 5100000000L);
        s.onTokens(3, 5500000000L); // a merged Chinese character: three tokens in one piece
        assertEquals(8.0, s.tokensPerSecond(), 1e-9); // 4 tokens in 0.5 s
        s.reset();
        assertEquals(0.0, s.tokensPerSecond(), 0.0);
    }

    @Test
    public void residentMemoryIsVmRss() {
        String status = "Name:\tjava\nVmPeak:\t 9000 kB\nVmRSS:\t  123456 kB\nThreads:\t12\n";
        assertEquals(123456L * 1024L, LiveStats.residentBytes(status));
        assertEquals(-1L, LiveStats.residentBytes("Name:\tjava\n"));
        long own = LiveStats.residentBytes();
        assertTrue("this JVM's VmRSS " + own, own > 1000000L); // Linux: /proc/self/status is there
    }
}

//! `/statistics`: totals over each device's latest measurement and the water
//! temperature by hour of day, read from `device_state` and `measurement_hourly`,
//! which the write path keeps current. Neither query touches `measurement`, so the
//! cost depends on the number of devices and hours, not on the number of rows.

use serde::Serialize;
use sqlx::{Connection, PgPool};
use utoipa::ToSchema;

use crate::model::WATER_SPECIFIC_HEAT;

/// The original's field names and shapes.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// Measurements stored.
    pub stats_measurement_count: i64,
    /// Devices that have logged in.
    pub stats_num_devices: i64,
    /// Sum of `charge_now` over each device's latest measurement.
    pub stats_total_battery_charge: i64,
    /// Sum of `water_level` (litres) over each device's latest measurement.
    pub stats_total_water_volume: i64,
    /// `[hour of day (UTC, 0–23), [mean water_temp, population standard deviation]]`
    /// over all measurements, ordered by hour.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub stats_mean_temperature: Vec<(i32, (f64, f64))>,
    /// Heat held in the water above ambient, in joules, summed over each device's
    /// latest measurement: water_level (L ≈ kg) × 4186 J/(kg·K) × (water_temp −
    /// ambient_temp). Negative when the water is colder than the air.
    pub stats_total_water_energy: f64,
}

/// Totals over the latest state of each device. `$1` is water's specific heat.
pub const SUMMARY_SQL: &str = r#"
    SELECT
        (SELECT count(*) FROM device),
        coalesce(sum(charge_now), 0)::int8,
        coalesce(sum(water_level), 0)::int8,
        coalesce(sum(water_level * $1 * (water_temp - ambient_temp)), 0)::float8
    FROM device_state
"#;

/// Count, sum and sum of squares of water_temp by hour of day, from the rollup.
pub const HOURLY_SQL: &str = r#"
    SELECT extract(hour FROM hour AT TIME ZONE 'UTC')::int4 AS hour_of_day,
           sum(measurement_count)::int8,
           sum(water_temp_sum)::float8,
           sum(water_temp_sum_squares)::float8
    FROM measurement_hourly
    GROUP BY hour_of_day
    ORDER BY hour_of_day
"#;

impl Statistics {
    pub async fn read(pool: &PgPool) -> Result<Self, sqlx::Error> {
        // One snapshot for both queries, so the figures agree with each other.
        let mut connection = crate::db::acquire(pool).await?;
        let mut transaction = connection.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *transaction).await?;
        let (devices, charge, volume, energy): (i64, i64, i64, f64) =
            sqlx::query_as(SUMMARY_SQL).bind(WATER_SPECIFIC_HEAT).fetch_one(&mut *transaction).await?;
        let hours: Vec<(i32, i64, f64, f64)> = sqlx::query_as(HOURLY_SQL).fetch_all(&mut *transaction).await?;
        transaction.commit().await?;

        let measurements = hours.iter().map(|(_, count, _, _)| count).sum();
        let mean_temperature = hours
            .into_iter()
            .filter(|(_, count, _, _)| *count > 0)
            .map(|(hour, count, sum, squares)| (hour, mean_and_stddev(count, sum, squares)))
            .collect();
        Ok(Self {
            stats_measurement_count: measurements,
            stats_num_devices: devices,
            stats_total_battery_charge: charge,
            stats_total_water_volume: volume,
            stats_mean_temperature: mean_temperature,
            stats_total_water_energy: energy,
        })
    }
}

/// Mean and population standard deviation from count, sum and sum of squares.
/// Rounding can push the variance a hair below zero; it is clamped.
fn mean_and_stddev(count: i64, sum: f64, sum_squares: f64) -> (f64, f64) {
    let n = count as f64;
    let mean = sum / n;
    let variance = (sum_squares / n - mean * mean).max(0.0);
    (mean, variance.sqrt())
}

#[cfg(test)]
mod tests {
    use super::mean_and_stddev;

    #[test]
    fn mean_and_population_stddev() {
        // 20, 40, 60: mean 40, population variance 800/3.
        let (mean, stddev) = mean_and_stddev(3, 120.0, 400.0 + 1600.0 + 3600.0);
        assert!((mean - 40.0).abs() < 1e-9);
        assert!((stddev - (800.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert_eq!(mean_and_stddev(2, 60.0, 1800.0), (30.0, 0.0));
    }
}
